package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"prismflow/pipeline"
	"prismflow/schemas/events"
)

const crashChildEnv = "PRISMFLOW_CRASH_CHILD_BROKERS"

// TestHelperCrashingStage is the process TestExactlyOnceAcrossCrash kills;
// run on its own it does nothing.
func TestHelperCrashingStage(t *testing.T) {
	brokers := os.Getenv(crashChildEnv)
	if brokers == "" {
		t.Skip("helper process for TestExactlyOnceAcrossCrash")
	}
	rt := pipeline.New(crashChildConfig(brokers), jsonCodec{}, nil, nil, nil)
	err := rt.Run(context.Background(), crashStage(func() {}))
	t.Fatalf("child stage returned %v; it should have been killed", err)
}

// crashChildConfig is the runtime config of a child process a test kills
// mid-transaction.
func crashChildConfig(brokers string) pipeline.Config {
	cfg := testConfig(strings.Split(brokers, ","))
	cfg.InstanceID = "child"
	cfg.BatchSize = 10
	// The parent waits this long for the dead transaction to abort.
	cfg.TransactionTimeout = 2 * time.Second
	// A dead member holds up the group's next rebalance until its
	// session expires; use the broker's minimum so the parent's wait is
	// short.
	cfg.ClientOpts = []kgo.Opt{kgo.SessionTimeout(6 * time.Second)}
	return cfg
}

func crashStage(onHandle func()) pipeline.Stage {
	return pipeline.Stage{
		Name: "crashy", Output: "out", Concurrency: 3,
		Routes: []pipeline.Route{pipeline.Transform("in", func(ctx context.Context, in events.TextExtracted) (events.SectionsSplit, error) {
			onHandle()
			return passThrough(ctx, in)
		})},
	}
}

// killAtThirdCommit runs the test binary's helper test as a child stage
// process (env tells it the brokers) and kills it with SIGKILL the moment
// its transactional producer (ids starting with txnPrefix) asks the
// broker to commit its third transaction: the broker is left holding an
// open transaction with produced outputs and pending offsets.
func killAtThirdCommit(t *testing.T, c *kfake.Cluster, helper, env, txnPrefix string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	cmd.Stdout, cmd.Stderr = &out, &out

	var commits atomic.Int32
	var child atomic.Pointer[os.Process] // set after Start; read on the broker's goroutine
	killed := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.EndTxnRequest)
		if !strings.HasPrefix(r.TransactionalID, txnPrefix) || !r.Commit || commits.Add(1) < 3 {
			return nil, nil, false
		}
		once.Do(func() {
			_ = child.Load().Kill() // SIGKILL: no deferred cleanup, no abort
			close(killed)
		})
		c.DropControl()
		return nil, errors.New("the producer died"), true
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Store(cmd.Process)
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child never reached its third commit; output:\n%s", out.String())
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("child exited cleanly; output:\n%s", out.String())
	}
}

// TestExactlyOnceAcrossCrash kills a stage process (SIGKILL) at the moment
// it asks the broker to commit its third transaction, so that the broker
// holds an open transaction with produced outputs and pending offsets.
// A new process of the stage must then produce every output exactly once
// as seen by a read_committed consumer, and must not redo the batches the
// dead process committed.
func TestExactlyOnceAcrossCrash(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in", "out", "dead-letter"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the stage stopped (cleanups run last in, first out)
	brokers := c.ListenAddrs()

	const n = 120
	keys := []string{"k1", "k2", "k3", "k4", "k5"}
	var recs []*kgo.Record
	for i := range n {
		key := keys[i%len(keys)]
		recs = append(recs, eventRecord(t, "in", key, events.TextExtracted{Document: events.Document{ID: key}, PageCount: int32(i)}))
	}
	produce(t, brokers, recs...)

	killAtThirdCommit(t, c, "TestHelperCrashingStage", crashChildEnv+"="+strings.Join(brokers, ","), "prismflow-crashy-child-")

	// The dead transaction's outputs are in the log, but must never be
	// visible to read_committed consumers.
	uncommitted := pollUntil(t, brokers, "out", kgo.ReadUncommitted(), func(got int) bool { return got > 0 })
	t.Logf("before restart: %d records in the log of out (read_uncommitted)", uncommitted)

	var handled atomic.Int32
	rt := pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil)
	stop := runStages(t, rt, crashStage(func() { handled.Add(1) }))
	got := consumeN(t, brokers, "out", n, kgo.ReadCommitted())
	stop()

	seen := map[int32]bool{}
	last := map[string]int32{}
	for _, r := range got {
		ev := decode[events.SectionsSplit](t, r)
		if seen[ev.PageCount] {
			t.Errorf("output %d visible twice", ev.PageCount)
		}
		seen[ev.PageCount] = true
		if p, ok := last[string(r.Key)]; ok && ev.PageCount <= p {
			t.Errorf("key %s: %d after %d", r.Key, ev.PageCount, p)
		}
		last[string(r.Key)] = ev.PageCount
	}
	if h := handled.Load(); h == 0 || h >= n {
		t.Errorf("restarted stage handled %d records: want some but not all of %d (the dead process committed two batches)", h, n)
	}
	all := pollUntil(t, brokers, "out", kgo.ReadUncommitted(), func(got int) bool { return got > n })
	t.Logf("after restart: %d records in the log, %d visible to read_committed", all, n)
}

// pollUntil reads topic from the start until done(records so far) holds.
func pollUntil(t *testing.T, brokers []string, topic string, iso kgo.IsolationLevel, done func(int) bool) int {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := 0
	for !done(got) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: gave up after %d records", topic, got)
		}
		got += len(fs.Records())
	}
	return got
}
