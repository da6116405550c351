//go:build chaos

package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline/testenv"
)

// chaosKills is how many stage processes TestChaosKillStageProcesses
// kills, and chaosDocs how many documents flow meanwhile.
const (
	chaosKills = 10
	chaosDocs  = 500
)

// killTarget is a stage process the kill test may crash, and the stages
// it runs.
type killTarget struct {
	name   string
	stages []string
	p      *instance
}

// TestChaosKillStageProcesses runs the pipeline as five processes (the
// API and four stage processes) against one outside broker, registry and
// database, as a scaled-out deployment does, uploads 500 documents and,
// while they flow, kills a random stage process with SIGKILL ten times
// after a random delay, restarting it each time. Every document must end
// done exactly once.
//
// The API process (which also runs the ingest stage, idle here: plain
// text has no attachments) is not killed, so that uploads and the
// client's view stay up; the processes killed run extract, split+analyze,
// classify+render and persist. They have stable instance ids, as
// pods with stable names do, so a restarted process takes its partitions back
// at once (static membership) instead of after a session timeout.
func TestChaosKillStageProcesses(t *testing.T) {
	rng := chaosRand(t)
	dsn := testenv.Postgres(t)
	brokers := testenv.Kafka(t)
	registryURL := testenv.Registry(t, brokers)
	blobDir := t.TempDir()
	blobs := "PRISMFLOW_BLOB_URL=file://" + blobDir

	front := startPrismflowWith(t, dsn, brokers[0], registryURL, blobs, "PRISMFLOW_STAGES=ingest")
	targets := []*killTarget{
		{name: "extract", stages: []string{"extract"}},
		{name: "split+analyze", stages: []string{"split", "analyze"}},
		{name: "classify+render", stages: []string{"classify", "render"}},
		{name: "persist", stages: []string{"persist"}},
	}
	for _, k := range targets {
		k.p = startPrismflowWith(t, dsn, brokers[0], registryURL, blobs, "PRISMFLOW_HTTP_ADDR=",
			"PRISMFLOW_STAGES="+strings.Join(k.stages, ","),
			"PRISMFLOW_RUNTIME_INSTANCE_ID=chaos-"+strings.ReplaceAll(k.name, "+", "-"))
	}

	paths := chaosDocuments(t, chaosDocs)
	start := time.Now()
	type uploaded struct {
		ids []string
		err error
	}
	upDone := make(chan uploaded, 1)
	go func() {
		ids, err := uploadAll(context.Background(), front.api, paths)
		upDone <- uploaded{ids, err}
	}()

	// The fault schedule: a random process after a random delay. The
	// sleeps are the faults' timing, not synchronisation.
	type kill struct {
		target  *killTarget
		at      time.Time
		done    int // documents done when it struck
		restart time.Duration
		ready   time.Time
	}
	var kills []kill
	for range chaosKills {
		time.Sleep(time.Duration(500+rng.IntN(4500)) * time.Millisecond)
		k := targets[rng.IntN(len(targets))]
		done := countDone(dsn)
		at := time.Now()
		k.p.kill()
		k.p.start() // waits for /readyz
		ready := time.Now()
		kills = append(kills, kill{target: k, at: at, done: done, restart: ready.Sub(at), ready: ready})
	}
	up := <-upDone
	if up.err != nil {
		t.Fatalf("after %d uploads: %v", len(up.ids), up.err)
	}
	docs := front.waitFinished(10*time.Minute, up.ids...)
	elapsed := time.Since(start)

	// Recovery: from the kill to the first event the restarted
	// process's stages produced after it was back (from stage_runs,
	// whose finished_at is the event's produced_at).
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i, k := range kills {
		var first *time.Time
		if err := conn.QueryRow(ctx, `SELECT min(finished_at) FROM stage_runs WHERE stage = ANY($1) AND finished_at >= $2`,
			k.target.stages, k.ready).Scan(&first); err != nil {
			t.Fatal(err)
		}
		recovered := "no event of its stages after it (nothing was left for them)"
		if first != nil {
			recovered = "its stages' next event " + first.Sub(k.at).Round(time.Millisecond).String() + " after the kill"
		}
		t.Logf("kill %2d: SIGKILL %-16s at +%6.1fs with %3d/%d done; restarted and ready in %v; %s",
			i+1, k.target.name, k.at.Sub(start).Seconds(), k.done, chaosDocs, k.restart.Round(time.Millisecond), recovered)
	}
	t.Logf("chaos kill: %d documents done in %v under %d kills: %.2f docs/s", len(docs), elapsed.Round(time.Millisecond), len(kills),
		float64(len(docs))/elapsed.Seconds())

	assertExactlyOnce(t, dsn, brokers[0], blobDir, docs, true)
	front.alive(t, "api")
	if t.Failed() {
		for _, k := range targets {
			k.p.logLines(t, k.name, 12, "dead-lettered", "dead letter could not be handled", "level=ERROR")
		}
	}
}

// productionRetry restores the runtime's default retry policy, which
// startPrismflowWith shortens for the other tests: an outage must be
// ridden out with the settings a deployment has.
var productionRetry = []string{"PRISMFLOW_RUNTIME_RETRY_INITIAL=200ms", "PRISMFLOW_RUNTIME_RETRY_MAX=10s"}

// TestChaosBrokerOutage stops the embedded broker while documents flow
// and starts it again, and checks that the stage processes ride the
// outage out by themselves and every document ends done exactly once.
//
// The broker lives in a `prismflow run` process that runs it with the
// embedded registry and one light stage (ingest: plain text has no
// attachments), and no API; the other stages and the API run in three
// more processes pointed at it, as a deployment's stage services point
// at its Kafka. Stopping that process (SIGTERM) and starting it again on
// the same data directory is a broker restart that the stage processes
// do not take part in: their clients must reconnect, their transactions
// in flight must abort and be redone, and nothing may be restarted by
// hand. Killing the whole embedded process instead would restart every
// stage with the broker, which tests crash recovery, not an outage.
func TestChaosBrokerOutage(t *testing.T) {
	dsn := testenv.Postgres(t)
	blobDir := t.TempDir()
	with := func(env ...string) []string {
		return slices.Concat([]string{"PRISMFLOW_BLOB_URL=file://" + blobDir}, productionRetry, env)
	}

	// Stable instance ids, as the Kubernetes manifests set from the pod
	// name: a member whose session the outage broke rejoins in its own
	// place instead of waiting out its old session.
	hub := startPrismflowWith(t, dsn, "", "", with("PRISMFLOW_STAGES=ingest", "PRISMFLOW_HTTP_ADDR=")...)
	registryURL := "http://" + hub.registry
	front := startPrismflowWith(t, dsn, hub.broker, registryURL, with("PRISMFLOW_STAGES=persist", "PRISMFLOW_RUNTIME_INSTANCE_ID=outage-front")...)
	w1 := startPrismflowWith(t, dsn, hub.broker, registryURL, with("PRISMFLOW_HTTP_ADDR=", "PRISMFLOW_STAGES=extract,split", "PRISMFLOW_RUNTIME_INSTANCE_ID=outage-w1")...)
	w2 := startPrismflowWith(t, dsn, hub.broker, registryURL, with("PRISMFLOW_HTTP_ADDR=", "PRISMFLOW_STAGES=analyze,classify,render", "PRISMFLOW_RUNTIME_INSTANCE_ID=outage-w2")...)

	const n = 150
	start := time.Now()
	ids, err := uploadAll(context.Background(), front.api, chaosDocuments(t, n))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, dsn, 10, 5*time.Minute)
	before := countDone(dsn)
	down := time.Now()
	hub.stop()
	stopped := time.Since(down)
	time.Sleep(10 * time.Second) // the outage
	up := time.Now()
	hub.start()
	back := time.Since(up)
	resumed, ok := waitProgress(dsn, countDone(dsn), 3*time.Minute)
	if !ok {
		t.Fatalf("no document finished within 3 minutes of the broker's return")
	}
	docs := front.waitFinished(5*time.Minute, ids...)
	elapsed := time.Since(start)
	t.Logf("broker outage: stopped at +%.1fs with %d/%d done (stop took %v), down %v, ready again in %v; next document done %v after it was back",
		down.Sub(start).Seconds(), before, n, stopped.Round(time.Millisecond), up.Sub(down).Round(time.Millisecond),
		back.Round(time.Millisecond), resumed.Sub(up).Round(time.Millisecond))
	t.Logf("broker outage: %d documents done in %v: %.2f docs/s", len(docs), elapsed.Round(time.Millisecond), float64(len(docs))/elapsed.Seconds())

	assertExactlyOnce(t, dsn, hub.broker, blobDir, docs, true)
	for name, p := range map[string]*instance{"api+persist": front, "extract+split": w1, "analyze+classify+render": w2} {
		p.alive(t, name)
	}
	if t.Failed() {
		for name, p := range map[string]*instance{"api+persist": front, "extract+split": w1, "analyze+classify+render": w2} {
			p.logLines(t, name, 12, "dead-lettered", "dead letter could not be handled", "level=ERROR")
		}
	}
}

// TestChaosPostgresOutage stops PostgreSQL for 30 s while documents flow
// and starts it again, and checks that the stage processes ride the
// outage out by themselves and every document ends done exactly once.
// PostgreSQL is a private server this test owns (pgserver), stopped with
// a fast shutdown (as pg_ctl stop -m fast) and started again on the same
// directory and port.
func TestChaosPostgresOutage(t *testing.T) {
	pg := startOwnPostgres(t)
	brokers := testenv.Kafka(t)
	registryURL := testenv.Registry(t, brokers)
	blobDir := t.TempDir()
	with := func(env ...string) []string {
		return slices.Concat([]string{"PRISMFLOW_BLOB_URL=file://" + blobDir}, productionRetry, env)
	}

	front := startPrismflowWith(t, pg.dsn, brokers[0], registryURL, with("PRISMFLOW_STAGES=persist")...)
	w1 := startPrismflowWith(t, pg.dsn, brokers[0], registryURL, with("PRISMFLOW_HTTP_ADDR=", "PRISMFLOW_STAGES=ingest,extract,split")...)
	w2 := startPrismflowWith(t, pg.dsn, brokers[0], registryURL, with("PRISMFLOW_HTTP_ADDR=", "PRISMFLOW_STAGES=analyze,classify,render")...)

	const n = 150
	start := time.Now()
	ids, err := uploadAll(context.Background(), front.api, chaosDocuments(t, n))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, pg.dsn, 10, 5*time.Minute)
	before := countDone(pg.dsn)
	down := time.Now()
	pg.stop(t)
	time.Sleep(30 * time.Second) // the outage
	pg.start(t)
	up := time.Now()
	resumed, ok := waitProgress(pg.dsn, countDone(pg.dsn), 3*time.Minute)
	if !ok {
		t.Fatalf("no document finished within 3 minutes of PostgreSQL's return")
	}
	docs := front.waitFinished(5*time.Minute, ids...)
	elapsed := time.Since(start)
	t.Logf("PostgreSQL outage: stopped at +%.1fs with %d/%d done, down %v; next document done %v after it was back",
		down.Sub(start).Seconds(), before, n, up.Sub(down).Round(time.Millisecond), resumed.Sub(up).Round(time.Millisecond))
	t.Logf("PostgreSQL outage: %d documents finished in %v: %.2f docs/s", len(docs), elapsed.Round(time.Millisecond), float64(len(docs))/elapsed.Seconds())

	assertExactlyOnce(t, pg.dsn, brokers[0], blobDir, docs, true)
	for name, p := range map[string]*instance{"api+persist": front, "ingest+extract+split": w1, "analyze+classify+render": w2} {
		p.alive(t, name)
	}
	if t.Failed() {
		front.logLines(t, "api+persist", 12, "dead-lettered", "dead letter could not be handled")
	}
}

// TestChaosFlakyLLM points analyze and classify at an OpenAI-compatible
// endpoint that answers 429, 500 or garbage 30% of the time: every
// document must still end done, none dead-lettered, and the model's
// valid answers must really be used.
func TestChaosFlakyLLM(t *testing.T) {
	rng := chaosRand(t)
	llm := newFlakyLLM(t, rng, 0.3)
	dsn := testenv.Postgres(t)
	p := startPrismflowWith(t, dsn, "", "",
		"PRISMFLOW_ANALYZE_PROVIDER=openai",
		"PRISMFLOW_CLASSIFY_PROVIDER=openai",
		"PRISMFLOW_LLM_OPENAI_BASE_URL="+llm.srv.URL+"/v1",
		"PRISMFLOW_LLM_OPENAI_API_KEY=sk-chaos",
		"PRISMFLOW_LLM_OPENAI_RATE_PER_SECOND=0",
	)
	const n = 100
	start := time.Now()
	ids, err := uploadAll(context.Background(), p.api, chaosDocuments(t, n))
	if err != nil {
		t.Fatal(err)
	}
	docs := p.waitFinished(5*time.Minute, ids...)
	elapsed := time.Since(start)

	f := llm.figures()
	t.Logf("flaky LLM: %d calls: %d valid, %d 429, %d 500, %d undecodable bodies, %d non-JSON answers (%.0f%% faulty); %d documents done in %v: %.2f docs/s",
		f.calls, f.valid, f.throttled, f.failed, f.badBody, f.badAnswer, 100*float64(f.calls-f.valid)/float64(max(f.calls, 1)),
		len(docs), elapsed.Round(time.Millisecond), float64(len(docs))/elapsed.Seconds())
	if f.throttled == 0 || f.failed == 0 || f.badBody == 0 || f.badAnswer == 0 || f.valid == 0 {
		t.Errorf("the endpoint did not serve every kind of answer: %+v", f)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var answered, fallback int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE llm_answered), count(*) FILTER (WHERE llm_fallback) FROM classifications`).
		Scan(&answered, &fallback); err != nil {
		t.Fatal(err)
	}
	t.Logf("flaky LLM: classify used the model's answer for %d documents and fell back to the built-in model for %d", answered, fallback)
	if answered == 0 {
		t.Errorf("no classification used the model's answer: the endpoint was not really in the loop")
	}
	assertExactlyOnce(t, dsn, p.broker, filepath.Join(p.dataDir, "blobs"), docs, true)
}
