package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline/testenv"
)

// insuranceItem is one line of the insurance corpus manifest, with its
// raw message.
type insuranceItem struct {
	ID          string   `json:"id"`
	Attachments []string `json:"attachments"`
	raw         []byte
}

func insuranceCorpus(t *testing.T) []insuranceItem {
	t.Helper()
	dir := filepath.Join(sharedDir(t), "corpus", "insurance-dev")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var items []insuranceItem
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var it insuranceItem
		if err := json.Unmarshal([]byte(line), &it); err != nil {
			t.Fatal(err)
		}
		if it.raw, err = os.ReadFile(filepath.Join(dir, it.ID, "message.eml")); err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	return items
}

// inboxProcess is a `prismflow inbox` process beside a pipeline.
type inboxProcess struct {
	t      *testing.T
	env    []string
	log    *os.File
	cmd    *exec.Cmd
	waited chan error
}

func startInbox(t *testing.T, p *instance, dsn string, dc *testenv.DovecotServer) *inboxProcess {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "inbox.log"))
	if err != nil {
		t.Fatal(err)
	}
	in := &inboxProcess{t: t, log: log, env: append(slices.Clone(p.env),
		// The pipeline's embedded broker, registry and blob folder.
		"PRISMFLOW_POSTGRES_DSN="+dsn,
		"PRISMFLOW_IMAP_NAME=broker-inbox",
		"PRISMFLOW_IMAP_ADDR="+dc.Addr,
		"PRISMFLOW_IMAP_TLS=none",
		"PRISMFLOW_IMAP_USERNAME="+dc.User,
		"PRISMFLOW_IMAP_PASSWORD="+dc.Password,
		"PRISMFLOW_IMAP_POLL_INTERVAL=500ms",
	)}
	t.Cleanup(func() {
		if in.cmd != nil {
			in.kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("prismflow inbox log (last 8 KiB):\n%s", tail(b, 8<<10))
		}
	})
	in.start()
	return in
}

func (in *inboxProcess) start() {
	in.t.Helper()
	in.cmd = exec.Command(prismflowBinary(in.t), "inbox")
	in.cmd.Env = in.env
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.waited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(in.cmd, in.waited)
}

func (in *inboxProcess) kill() {
	_ = in.cmd.Process.Kill()
	<-in.waited
	in.cmd = nil
}

func (in *inboxProcess) stop() {
	in.t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.waited:
		in.cmd = nil
		if err != nil {
			in.t.Errorf("prismflow inbox did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		in.kill()
		in.t.Error("prismflow inbox did not stop within 30s of SIGTERM")
	}
}

// countMessages counts the connector's records in the given states.
func countMessages(t *testing.T, conn *pgx.Conn, states ...string) int {
	t.Helper()
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(*) FROM imap_messages WHERE state = ANY($1)`, states).Scan(&n)
	if err != nil && !strings.Contains(err.Error(), "does not exist") { // before the migration ran
		t.Fatal(err)
	}
	return n
}

// TestInboxEndToEndSurvivesKill delivers the 25 insurance e-mails to a
// real Dovecot, runs the pipeline and, beside it, `prismflow inbox`,
// which is killed with SIGKILL in the middle of the batch and started
// again. Every message must become exactly one document (source imap),
// be flagged on the server, and each of its attachments must reach done
// as a document whose parent is the e-mail.
func TestInboxEndToEndSurvivesKill(t *testing.T) {
	items := insuranceCorpus(t)
	dc := testenv.Dovecot(t, testenv.DovecotOptions{})
	raws := make([][]byte, len(items))
	for i, it := range items {
		raws[i] = it.raw
	}
	dc.Append(t, "INBOX", raws...)

	dsn := testenv.Postgres(t)
	p := startPrismflow(t, dsn)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	in := startInbox(t, p, dsn, dc)
	deadline := time.Now().Add(2 * time.Minute)
	for countMessages(t, conn, "ingested", "marked") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no message ingested within 2 minutes")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	in.kill()
	atKill := countMessages(t, conn, "marked")
	t.Logf("killed prismflow inbox with %d of %d messages marked", atKill, len(items))
	if atKill == len(items) {
		t.Fatalf("the connector finished before the kill; the test did not kill it mid-batch")
	}

	in.start()
	deadline = time.Now().Add(3 * time.Minute)
	for countMessages(t, conn, "marked") < len(items) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages marked within 3 minutes", countMessages(t, conn, "marked"), len(items))
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.stop()

	flags := dc.Flags(t, "INBOX")
	if len(flags) != len(items) {
		t.Fatalf("%d messages in INBOX, want %d", len(flags), len(items))
	}
	for uid, f := range flags {
		if !slices.Contains(f, "$PrismflowIngested") {
			t.Errorf("message uid %d not flagged: %v", uid, f)
		}
	}

	// One document per message, found by the message's sha256.
	rows, err := conn.Query(ctx, `SELECT id, sha256 FROM documents WHERE source = 'imap' AND parent_id = ''`)
	if err != nil {
		t.Fatal(err)
	}
	type doc struct{ ID, SHA string }
	parents, err := pgx.CollectRows(rows, pgx.RowToStructByPos[doc])
	if err != nil {
		t.Fatal(err)
	}
	bySum := map[string][]string{}
	for _, d := range parents {
		bySum[d.SHA] = append(bySum[d.SHA], d.ID)
	}
	if len(parents) != len(items) {
		t.Errorf("%d e-mail documents with source imap, want %d", len(parents), len(items))
	}

	var ids []string
	for _, it := range items {
		sum := fmt.Sprintf("%x", sha256.Sum256(it.raw))
		got := bySum[sum]
		if len(got) != 1 {
			t.Errorf("item %s: %d documents, want exactly 1", it.ID, len(got))
			continue
		}
		mailID := got[0]
		ids = append(ids, mailID)
		// The attachments arrive through the ingest stage after the
		// e-mail's text: poll the listing until they are all there.
		var kids []listedDoc
		deadline := time.Now().Add(3 * time.Minute)
		for kids = p.children(mailID); len(kids) < len(it.Attachments) && time.Now().Before(deadline); kids = p.children(mailID) {
			time.Sleep(200 * time.Millisecond)
		}
		if len(kids) != len(it.Attachments) {
			t.Errorf("item %s: %d attachment documents, want %d (%v)", it.ID, len(kids), len(it.Attachments), it.Attachments)
		}
		for _, k := range kids {
			if k.ParentID != mailID {
				t.Errorf("item %s: attachment %s has parent %q, want %s", it.ID, k.Filename, k.ParentID, mailID)
			}
			ids = append(ids, k.ID)
		}
	}
	for id, d := range p.waitFinished(8*time.Minute, ids...) {
		if d.Status != "done" {
			t.Errorf("document %s (%s): %s (%s), want done", id, d.Filename, d.Status, d.Error)
		}
	}
	var imapDocs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM documents WHERE source = 'imap'`).Scan(&imapDocs); err != nil {
		t.Fatal(err)
	}
	want := len(items)
	for _, it := range items {
		want += len(it.Attachments)
	}
	if imapDocs != want {
		t.Errorf("%d documents with source imap, want %d (e-mails and attachments, each once)", imapDocs, want)
	}
}

// TestRunWatchesConfiguredMailbox checks that `prismflow run` runs the
// connector itself when a mailbox is configured: a delivered e-mail and
// its attachment go through the pipeline, and the message is flagged.
func TestRunWatchesConfiguredMailbox(t *testing.T) {
	item := insuranceCorpus(t)[0] // one PDF attachment
	dc := testenv.Dovecot(t, testenv.DovecotOptions{})
	dsn := testenv.Postgres(t)
	p := startPrismflowWith(t, dsn, "", "",
		"PRISMFLOW_IMAP_ADDR="+dc.Addr,
		"PRISMFLOW_IMAP_TLS=none",
		"PRISMFLOW_IMAP_USERNAME="+dc.User,
		"PRISMFLOW_IMAP_PASSWORD="+dc.Password,
	)
	dc.Append(t, "INBOX", item.raw) // after start: IDLE must see it

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var mailID string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := conn.QueryRow(ctx, `SELECT id FROM documents WHERE source = 'imap' AND parent_id = ''`).Scan(&mailID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no e-mail document from the mailbox within 2 minutes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var kids []listedDoc
	for kids = p.children(mailID); len(kids) < 1 && time.Now().Before(deadline); kids = p.children(mailID) {
		time.Sleep(200 * time.Millisecond)
	}
	if len(kids) != 1 {
		t.Fatalf("%d attachment documents, want 1", len(kids))
	}
	for id, d := range p.waitFinished(3*time.Minute, mailID, kids[0].ID) {
		if d.Status != "done" {
			t.Errorf("document %s (%s): %s (%s), want done", id, d.Filename, d.Status, d.Error)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		f := dc.Flags(t, "INBOX")[1]
		if slices.Contains(f, "$PrismflowIngested") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not flagged: %v", f)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
