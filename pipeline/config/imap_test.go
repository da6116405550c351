package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIMAPMailboxesFromYAMLAndEnv loads a YAML list of mailboxes plus the
// environment's single mailbox, and checks nothing secret prints.
func TestIMAPMailboxesFromYAMLAndEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prismflow.yaml")
	yaml := `imap:
  tenant: broker
  mailboxes:
    - name: preventivi
      addr: imap.example.com:993
      username: p@example.com
      password: hunter2
      idle: false
      poll_interval: 30s
      after: move
      move_to: Archivio
      rules:
        content_types: [application/pdf]
        filenames: ["*.pdf"]
        max_bytes: 1000
`
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRISMFLOW_IMAP_ADDR", "mail.example.com:143")
	t.Setenv("PRISMFLOW_IMAP_TLS", "starttls")
	t.Setenv("PRISMFLOW_IMAP_USERNAME", "sinistri")
	t.Setenv("PRISMFLOW_IMAP_XOAUTH2_TOKEN", "tok-secret")
	c, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	mbs := c.IMAP.MailboxList()
	if len(mbs) != 2 || c.IMAP.Tenant != "broker" {
		t.Fatalf("mailboxes %+v tenant %q, want 2 and broker", mbs, c.IMAP.Tenant)
	}
	y, e := mbs[0], mbs[1]
	if y.Name != "preventivi" || y.Password.Reveal() != "hunter2" || y.IDLE == nil || *y.IDLE || y.PollInterval != 30*time.Second ||
		y.After != "move" || y.MoveTo != "Archivio" || y.Rules.MaxBytes != 1000 || len(y.Rules.ContentTypes) != 1 || len(y.Rules.Filenames) != 1 {
		t.Errorf("YAML mailbox: %+v", y)
	}
	if e.Name != "env" || e.Addr != "mail.example.com:143" || e.TLS != "starttls" || e.Username != "sinistri" ||
		e.XOAuth2Token.Reveal() != "tok-secret" || e.Mailbox != "INBOX" || e.After != "flag" || e.Flag != "$PrismflowIngested" || e.PollInterval != time.Minute {
		t.Errorf("env mailbox: %+v", e)
	}
	if s := fmt.Sprintf("%v %+v", mbs, c); containsAny(s, "hunter2", "tok-secret") {
		t.Errorf("a secret printed: %s", s)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
