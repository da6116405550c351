package imap

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/google/uuid"

	"prismflow/connectors/blob"
	"prismflow/pipeline/config"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
)

// corpus returns the raw messages of the shared insurance corpus.
func corpus(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob("../../../shared/corpus/insurance-dev/*/message.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus messages under ../../../shared/corpus/insurance-dev (err %v)", err)
	}
	slices.Sort(files)
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// recorder is the Kafka stand-in: it keeps every event "acknowledged".
type recorder struct {
	mu     sync.Mutex
	events []events.DocumentReceived
	fail   func(n int) error // fails the n-th publish (0-based) when set
}

func (r *recorder) publish(_ context.Context, ev events.DocumentReceived) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(len(r.events)); err != nil {
			return err
		}
	}
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) snapshot() []events.DocumentReceived {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

type env struct {
	dc    *testenv.DovecotServer
	store *persist.Store
	blobs blob.Store
	rec   *recorder
}

func newEnv(t *testing.T, opts testenv.DovecotOptions) *env {
	t.Helper()
	ctx := context.Background()
	st, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	blobs, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{dc: testenv.Dovecot(t, opts), store: st, blobs: blobs, rec: &recorder{}}
}

func (e *env) mailbox(name string) config.IMAPMailbox {
	return config.IMAPMailbox{Name: name, Addr: e.dc.Addr, TLS: "none", Username: e.dc.User,
		Password: config.Secret(e.dc.Password), PollInterval: 200 * time.Millisecond}
}

// start runs the connector until the test ends or stop is called.
func (e *env) start(t *testing.T, mbs ...config.IMAPMailbox) (stop func() error) {
	t.Helper()
	c := &Connector{
		Ingest:    &ingest.Ingester{Blobs: e.blobs, Publish: e.rec.publish},
		DB:        e.store.Pool(),
		Mailboxes: mbs,
		TLSConfig: e.dc.TLSConfig(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

func hasFlag(flags []goimap.Flag, f goimap.Flag) bool { return slices.Contains(flags, f) }

// TestIngestsEachMessageOnceAndFlags delivers the corpus, lets the
// connector (IDLE) ingest it, delivers more while it runs, and checks
// that every message became exactly one document with the envelope's
// sender and subject, the raw message as its blob, and the keyword set.
func TestIngestsEachMessageOnceAndFlags(t *testing.T) {
	e := newEnv(t, testenv.DovecotOptions{})
	msgs := corpus(t)
	first, later := msgs[:20], msgs[20:]
	e.dc.Append(t, "INBOX", first...)

	mb := e.mailbox("inbox")
	mb.PollInterval = time.Hour // only IDLE can wake it for the later messages
	stop := e.start(t, mb)
	eventually(t, 60*time.Second, "first messages ingested", func() bool { return len(e.rec.snapshot()) == len(first) })
	e.dc.Append(t, "INBOX", later...)
	eventually(t, 60*time.Second, "later messages ingested under IDLE", func() bool { return len(e.rec.snapshot()) == len(msgs) })
	eventually(t, 30*time.Second, "every message flagged", func() bool {
		flags := e.dc.Flags(t, "INBOX")
		for _, f := range flags {
			if !hasFlag(f, DefaultFlag) {
				return false
			}
		}
		return len(flags) == len(msgs)
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}

	evs := e.rec.snapshot()
	if len(evs) != len(msgs) {
		t.Fatalf("%d events for %d messages", len(evs), len(msgs))
	}
	ids := map[string]bool{}
	stored := map[string]bool{}
	for _, ev := range evs {
		d := ev.Document
		if ids[d.ID] {
			t.Errorf("document %s ingested twice", d.ID)
		}
		ids[d.ID] = true
		if d.Source != Source || d.ContentType != "message/rfc822" || d.Sender == "" || d.Subject == "" || d.ParentID != "" {
			t.Errorf("document %s: source %q type %q sender %q subject %q parent %q", d.ID, d.Source, d.ContentType, d.Sender, d.Subject, d.ParentID)
		}
		rc, err := e.blobs.Get(context.Background(), d.Blob)
		if err != nil {
			t.Fatalf("blob of %s: %v", d.ID, err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		stored[buf.String()] = true
	}
	for i, m := range msgs {
		// Dovecot stores what APPEND gave it; the blob must be those bytes.
		if !stored[string(m)] {
			t.Errorf("message %d is not stored byte for byte", i)
		}
	}
	var marked int
	if err := e.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM imap_messages WHERE mailbox = 'inbox' AND state = 'marked'`).Scan(&marked); err != nil {
		t.Fatal(err)
	}
	if marked != len(msgs) {
		t.Errorf("%d messages recorded as marked, want %d", marked, len(msgs))
	}

	// A restart finds nothing new.
	stop = e.start(t, mb)
	e.dc.Append(t, "INBOX", msgs[0]) // a new copy is a new message
	eventually(t, 30*time.Second, "the new copy ingested", func() bool { return len(e.rec.snapshot()) == len(msgs)+1 })
	stop()
	if n := len(e.rec.snapshot()); n != len(msgs)+1 {
		t.Errorf("after restart %d events, want %d", n, len(msgs)+1)
	}
}

// TestResumesAfterCrash sets up the records a crash leaves behind and
// checks the connector finishes each message without a second document:
// reserved (crash before the acknowledgement) is sent again with the same
// id; ingested (crash between acknowledgement and mark) is only marked;
// ingested but already flagged (crash between the flag and its record)
// is only recorded as marked.
func TestResumesAfterCrash(t *testing.T) {
	e := newEnv(t, testenv.DovecotOptions{})
	msgs := corpus(t)[:4]
	e.dc.Append(t, "INBOX", msgs...)

	c := e.dc.Client(t)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Store(goimap.UIDSetNum(3), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{DefaultFlag}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	reservedID := uuid.NewString()
	for _, r := range []struct {
		uid   int64
		id    string
		state State
	}{{1, reservedID, Reserved}, {2, uuid.NewString(), Ingested}, {3, uuid.NewString(), Ingested}} {
		if _, err := e.store.Pool().Exec(context.Background(),
			`INSERT INTO imap_messages (mailbox, uidvalidity, uid, document_id, state) VALUES ('inbox', $1, $2, $3, $4)`,
			int64(sel.UIDValidity), r.uid, r.id, string(r.state)); err != nil {
			t.Fatal(err)
		}
	}

	mb := e.mailbox("inbox")
	mb.IDLE = new(bool) // polling
	stop := e.start(t, mb)
	eventually(t, 30*time.Second, "all four recorded as marked", func() bool {
		var n int
		if err := e.store.Pool().QueryRow(context.Background(),
			`SELECT count(*) FROM imap_messages WHERE state = 'marked'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 4
	})
	stop()
	for uid, f := range e.dc.Flags(t, "INBOX") {
		if !hasFlag(f, DefaultFlag) {
			t.Errorf("uid %d not flagged: %v", uid, f)
		}
	}
	evs := e.rec.snapshot()
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2 (uid 1 resent, uid 4 new; uids 2 and 3 only marked)", len(evs))
	}
	if evs[0].Document.ID != reservedID {
		t.Errorf("reserved message resent as %s, want its recorded id %s", evs[0].Document.ID, reservedID)
	}
	if evs[1].Document.ID == reservedID {
		t.Errorf("new message got the reserved id %s", evs[1].Document.ID)
	}
}

// TestNotMarkedWhenPublishFails checks the order of the guarantee: an
// event the broker did not acknowledge leaves the message unmarked, and
// it is ingested once the broker is back.
func TestNotMarkedWhenPublishFails(t *testing.T) {
	e := newEnv(t, testenv.DovecotOptions{})
	e.dc.Append(t, "INBOX", corpus(t)[0])
	var mu sync.Mutex
	down, attempts := true, 0
	e.rec.fail = func(int) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if down {
			return errors.New("broker down")
		}
		return nil
	}
	mb := e.mailbox("inbox")
	stop := e.start(t, mb)
	eventually(t, 30*time.Second, "a failed publish", func() bool { mu.Lock(); defer mu.Unlock(); return attempts > 0 })
	if f := e.dc.Flags(t, "INBOX"); hasFlag(f[1], DefaultFlag) {
		t.Fatalf("message flagged although its event was not acknowledged: %v", f[1])
	}
	mu.Lock()
	down = false
	mu.Unlock()
	eventually(t, 30*time.Second, "ingested after the broker is back", func() bool { return len(e.rec.snapshot()) == 1 })
	eventually(t, 30*time.Second, "flagged", func() bool { return hasFlag(e.dc.Flags(t, "INBOX")[1], DefaultFlag) })
	stop()
}

// TestMoveAndRules moves ingested messages to a folder, leaves the ones
// the rules do not take (corpus message 0002 has no attachment, and a
// text-only message), and reaches the server over TLS and STARTTLS.
func TestMoveAndRules(t *testing.T) {
	e := newEnv(t, testenv.DovecotOptions{TLS: true})
	all := corpus(t)
	withPDF := [][]byte{all[0], all[2], all[3]}
	plain := []byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: no attachment\r\nMessage-ID: <x@example.com>\r\n\r\njust text\r\n")
	e.dc.Append(t, "Polizze", append(slices.Clone(withPDF), all[1], plain)...)
	e.dc.Append(t, "Sinistri", all[0])

	for _, tc := range []struct {
		name, tls, addr, folder string
		taken, left             int
	}{
		{"tls", "tls", e.dc.TLSAddr, "Polizze", len(withPDF), 2},
		{"starttls", "starttls", e.dc.Addr, "Sinistri", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.rec.snapshot())
			mb := e.mailbox(tc.name)
			mb.TLS, mb.Addr, mb.Mailbox = tc.tls, tc.addr, tc.folder
			mb.After, mb.MoveTo = "move", tc.folder+"-done"
			mb.Rules = config.IMAPRules{ContentTypes: []string{"application/pdf"}, Filenames: []string{"*.PDF"}}
			stop := e.start(t, mb)
			// Messages are handled in UID order, so the skipped ones may
			// still be on their way when the taken ones are moved: wait
			// for both before stopping.
			eventually(t, 30*time.Second, "taken messages moved and the rest skipped", func() bool {
				return len(e.dc.Flags(t, mb.MoveTo)) == tc.taken && e.skipped(t, tc.name) == tc.left
			})
			stop()
			if left := len(e.dc.Flags(t, tc.folder)); left != tc.left {
				t.Errorf("%d messages left in %s, want %d", left, tc.folder, tc.left)
			}
			if got := len(e.rec.snapshot()) - before; got != tc.taken {
				t.Errorf("%d documents, want %d", got, tc.taken)
			}
		})
	}
}

// skipped counts the messages of mailbox recorded as skipped by the rules.
func (e *env) skipped(t *testing.T, mailbox string) int {
	t.Helper()
	var n int
	if err := e.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM imap_messages WHERE mailbox = $1 AND state = 'skipped'`, mailbox).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTakes(t *testing.T) {
	pdf := attachment{contentType: "application/pdf", filename: "Polizza.PDF", size: 1000}
	jpg := attachment{contentType: "image/jpeg", filename: "foto.jpg", size: 5000}
	for _, tc := range []struct {
		name  string
		rules config.IMAPRules
		atts  []attachment
		want  bool
	}{
		{"no rules take all", config.IMAPRules{}, nil, true},
		{"type", config.IMAPRules{ContentTypes: []string{"application/pdf"}}, []attachment{jpg, pdf}, true},
		{"type glob", config.IMAPRules{ContentTypes: []string{"image/*"}}, []attachment{pdf}, false},
		{"name glob ignores case", config.IMAPRules{Filenames: []string{"*.pdf"}}, []attachment{pdf}, true},
		{"size", config.IMAPRules{MaxBytes: 2000}, []attachment{jpg}, false},
		{"all rules on one attachment", config.IMAPRules{ContentTypes: []string{"image/*"}, Filenames: []string{"*.pdf"}}, []attachment{pdf, jpg}, false},
		{"rules need an attachment", config.IMAPRules{MaxBytes: 1 << 20}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := takes(tc.rules, tc.atts); got != tc.want {
				t.Errorf("takes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNormalizeRefusesBadConfig(t *testing.T) {
	ok := config.IMAPMailbox{Name: "a", Addr: "h:1", Username: "u", Password: "p"}
	for _, tc := range []struct {
		name string
		mbs  []config.IMAPMailbox
	}{
		{"none", nil},
		{"no name", []config.IMAPMailbox{{Addr: "h:1", Username: "u", Password: "p"}}},
		{"duplicate", []config.IMAPMailbox{ok, ok}},
		{"no secret", []config.IMAPMailbox{{Name: "a", Addr: "h:1", Username: "u"}}},
		{"bad tls", []config.IMAPMailbox{{Name: "a", Addr: "h:1", Username: "u", Password: "p", TLS: "ssl"}}},
		{"move without folder", []config.IMAPMailbox{{Name: "a", Addr: "h:1", Username: "u", Password: "p", After: "move"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := normalize(tc.mbs); err == nil {
				t.Error("accepted")
			}
		})
	}
	got, err := normalize([]config.IMAPMailbox{ok})
	if err != nil {
		t.Fatal(err)
	}
	if m := got[0]; m.TLS != "tls" || m.Mailbox != "INBOX" || m.After != "flag" || m.Flag != DefaultFlag || m.PollInterval != DefaultPollInterval {
		t.Errorf("defaults not applied: %+v", m)
	}
}
