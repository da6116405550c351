package live

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ServeSSE streams tenant's updates ("" = all) to one browser as
// Server-Sent Events until the client goes away or the hub stops:
//
//	event: update
//	data: {"document":"…","tenant":"…","stage":"split","status":"processing","run":1,"at":"…"}
//
// After updates were dropped for this client (it fell behind) it sends
//
//	event: resync
//	data: {"dropped":3}
//
// so the page reloads what it shows. An idle stream gets a comment line
// every heartbeat (WithHeartbeat). The caller authenticates the request
// and picks the tenant; ServeSSE only streams.
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request, tenant string) {
	rc := http.NewResponseController(w)
	// A server-wide WriteTimeout would cut the stream; this response
	// lives as long as the client does.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		h.log.DebugContext(r.Context(), "live: clear write deadline", "err", err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// Reconnect after 3s when the stream breaks (the browser default).
	if _, err := io.WriteString(w, "retry: 3000\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			// A middleware's writer that hides http.Flusher (and no
			// Unwrap): the browser would wait for ever.
			h.log.ErrorContext(r.Context(), "live: the response writer cannot flush; no live updates", "err", err)
		}
		return
	}

	s := h.subscribe(tenant)
	defer h.unsubscribe(s)
	beat := time.NewTicker(h.heartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case u, ok := <-s.ch:
			if !ok {
				return // the hub stopped
			}
			if n := s.dropped.Swap(0); n > 0 {
				err = writeEvent(w, "resync", map[string]int64{"dropped": n})
			}
			if err == nil {
				err = writeEvent(w, "update", u)
			}
		case <-beat.C:
			if n := s.dropped.Swap(0); n > 0 {
				err = writeEvent(w, "resync", map[string]int64{"dropped": n})
			} else {
				_, err = io.WriteString(w, ": heartbeat\n\n")
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return // the client is gone
		}
	}
}

// writeEvent writes one event; JSON has no raw newlines, so data fits on
// one line.
func writeEvent(w io.Writer, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("live: encode %s event: %w", name, err)
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err
}
