package render

import (
	"bytes"
	"fmt"
	netmail "net/mail"
	"time"

	"github.com/emersion/go-message/mail"
)

// writeMessage writes a single-part text/plain RFC 5322 message. The
// Message-Id is derived from the document and run so that a replayed
// draft is recognisably the same draft. X-Unsent marks it as a draft for
// mail clients that honour it (Outlook opens it ready to send).
func writeMessage(from, to *netmail.Address, subject, msgID string, date time.Time, body string) ([]byte, error) {
	var h mail.Header
	h.SetDate(date)
	h.SetAddressList("From", []*mail.Address{from})
	if to != nil {
		h.SetAddressList("To", []*mail.Address{to})
	}
	h.SetSubject(subject)
	h.SetMessageID(msgID)
	h.Set("X-Unsent", "1")
	h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("create message: %w", err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return nil, fmt.Errorf("write body: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close message: %w", err)
	}
	return buf.Bytes(), nil
}
