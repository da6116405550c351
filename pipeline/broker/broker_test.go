package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline/broker"
)

func start(t *testing.T, dir, addr string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{DataDir: dir, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func client(t *testing.T, b *broker.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestAdvertisedAddress(t *testing.T) {
	for _, tc := range []struct{ addr, wantHost string }{
		{"localhost:0", "localhost"},
		{"127.0.0.1:0", "127.0.0.1"},
		{"0.0.0.0:0", "localhost"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			b := start(t, t.TempDir(), tc.addr)
			defer b.Close()
			if len(b.Addrs()) != 1 || !strings.HasPrefix(b.Addrs()[0], tc.wantHost+":") || strings.HasSuffix(b.Addrs()[0], ":0") {
				t.Fatalf("Addrs() = %v, want %s:<port>", b.Addrs(), tc.wantHost)
			}
			// Metadata must send clients to an address they can dial.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			adm := kadm.NewClient(client(t, b))
			bs, err := adm.ListBrokers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != 1 || bs[0].Host != tc.wantHost {
				t.Fatalf("metadata brokers %+v, want host %s", bs, tc.wantHost)
			}
			if _, err := adm.CreateTopic(ctx, 1, -1, nil, "probe"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRestartKeepsState stops the broker and starts it again on the same
// data dir: topics, records, committed offsets and the outcome of
// transactions must all be there.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b := start(t, dir, "127.0.0.1:0")
	adm := kadm.NewClient(client(t, b))
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, "docs"); err != nil {
		t.Fatal(err)
	}
	plain := client(t, b)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "docs", Key: []byte(fmt.Sprint("k", i%4)), Value: []byte(fmt.Sprint("plain-", i))})
	}
	if err := plain.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn := client(t, b, kgo.TransactionalID("restart-test"), kgo.DefaultProduceTopic("docs"))
	for _, commit := range []bool{true, false} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			tag := map[bool]string{true: "committed", false: "aborted"}[commit]
			if err := txn.ProduceSync(ctx, kgo.StringRecord(fmt.Sprint(tag, "-", i))).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "docs", Partition: 0, At: 2, LeaderEpoch: -1})
	offsets.Add(kadm.Offset{Topic: "docs", Partition: 1, At: 1, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "readers", offsets); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = start(t, dir, "127.0.0.1:0")
	defer b.Close()
	adm = kadm.NewClient(client(t, b))
	td, err := adm.ListTopics(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(td["docs"].Partitions); got != 3 {
		t.Fatalf("docs has %d partitions after restart, want 3", got)
	}
	fetched, err := adm.FetchOffsets(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		part int32
		at   int64
	}{{0, 2}, {1, 1}} {
		o, ok := fetched.Lookup("docs", p.part)
		if !ok || o.At != p.at {
			t.Errorf("committed offset docs/%d = %+v (found %v), want %d", p.part, o, ok, p.at)
		}
	}

	cons := client(t, b,
		kgo.ConsumeTopics("docs"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	seen := map[string]bool{}
	for len(seen) < 13 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	for v := range seen {
		if strings.HasPrefix(v, "aborted") {
			t.Errorf("aborted record %q visible after restart", v)
		}
	}
	if len(seen) != 13 {
		t.Errorf("read %d distinct records after restart, want 10 plain + 3 committed: %v", len(seen), seen)
	}
	// New writes continue the log rather than overwrite it.
	if err := client(t, b).ProduceSync(ctx, &kgo.Record{Topic: "docs", Partition: 0, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total < 14 {
		t.Errorf("end offsets sum to %d after restart and one write, want at least 14", total)
	}
}

const killChildEnv = "PRISMFLOW_BROKER_KILL_CHILD_DIR"

// TestHelperBrokerProcess runs a broker for TestKillKeepsAcknowledgedWrites
// until it is killed; run on its own it does nothing.
func TestHelperBrokerProcess(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("helper process for TestKillKeepsAcknowledgedWrites")
	}
	b := start(t, dir, "127.0.0.1:0")
	fmt.Printf("ADDR %s\n", b.Addrs()[0])
	select {} // until SIGKILL
}

// TestKillKeepsAcknowledgedWrites kills (SIGKILL) a broker process right
// after it acknowledged records, a committed transaction and committed
// offsets, and starts a broker on its data dir: all of it must be there.
func TestKillKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var addr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("broker process did not report its address")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("kill-test"), kgo.DefaultProduceTopic("docs"))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "docs"); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 3)), Value: []byte(fmt.Sprint("v", i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "docs", Partition: 1, At: 3, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "g", offsets); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	b := start(t, dir, "127.0.0.1:0")
	defer b.Close()
	adm = kadm.NewClient(client(t, b))
	fetched, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("docs", 1); !ok || o.At != 3 {
		t.Errorf("committed offset after kill: %+v (found %v), want 3", o, ok)
	}
	cons := client(t, b,
		kgo.ConsumeTopics("docs"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	seen := map[string]bool{}
	for len(seen) < 20 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != 20 {
		t.Errorf("read %d committed records after kill -9, want 20", len(seen))
	}
}

// TestOutsideClientCanConnect checks the broker with a client that is not
// franz-go: kcat (librdkafka) follows the advertised address from
// metadata, so this fails if advertising is wrong.
func TestOutsideClientCanConnect(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found: install the Debian package kcat")
	}
	b := start(t, t.TempDir(), "localhost:0")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, b)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "probe"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "probe", Value: []byte("ciao")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, kcat, "-b", b.Addrs()[0], "-C", "-t", "probe", "-c", "1", "-e", "-q", "-f", "%s").CombinedOutput()
	if err != nil || string(out) != "ciao" {
		t.Fatalf("kcat consume: %v, output %q", err, out)
	}
}
