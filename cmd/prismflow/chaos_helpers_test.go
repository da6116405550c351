//go:build chaos

package main

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline/topology"
)

// The chaos suite (go test -tags chaos, make chaos) breaks the pipeline
// on purpose while documents flow: it kills stage processes, stops the
// broker and PostgreSQL, and serves a failing LLM, and then checks that
// every document still ends done exactly once. The faults are drawn from
// a seeded generator whose seed is logged, so a failure can be replayed
// with PRISMFLOW_CHAOS_SEED.

// chaosRand returns the suite's random generator, seeded from
// PRISMFLOW_CHAOS_SEED when set, else from the clock, and logs the seed.
func chaosRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PRISMFLOW_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PRISMFLOW_CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("chaos seed %d (PRISMFLOW_CHAOS_SEED=%d replays the same fault schedule)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// chaosDocuments writes n small, distinct plain-text requests for quotes
// into a temporary folder and returns their paths. They are cheap to
// process (one page, no OCR) yet go through every stage like real mail:
// each names a client, a category's cue words, amounts and dates (one in
// the past, which the rules provider remarks on).
func chaosDocuments(t testing.TB, n int) []string {
	t.Helper()
	dir := t.TempDir()
	kinds := []string{
		"la flotta aziendale di %[2]d automezzi (autocarri e furgoni), libro matricola allegato",
		"una polizza di responsabilità civile professionale per lo studio, massimale %[2]d00.000 euro",
		"il fabbricato di via Roma %[2]d, superficie %[2]d0 mq, incendio e furto",
		"l'impianto fotovoltaico da %[2]d kW sul tetto del capannone, rischi tecnologici e guasti",
	}
	paths := make([]string, n)
	for i := range n {
		text := fmt.Sprintf("Oggetto: richiesta di preventivo n. %[1]d\n\n"+
			"Spett.le Navigli Broker,\n\n"+
			"la Ditta Prova %[1]d S.r.l., con sede in via dei Mille %[1]d a Milano, chiede un preventivo per "+
			kinds[i%len(kinds)]+", con decorrenza 01/0%[3]d/2027.\n"+
			"Il valore assicurato è di euro %[1]d.500,00; la polizza in corso è scaduta il 15/03/2020.\n\n"+
			"Restiamo in attesa di un vostro riscontro.\n"+
			"Cordiali saluti,\nMario Rossi %[1]d\n", i+1, i%9+2, i%9+1)
		paths[i] = filepath.Join(dir, fmt.Sprintf("richiesta-%04d.txt", i+1))
		if err := os.WriteFile(paths[i], []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// uploadAll uploads paths through the API at base and returns the ids
// in order. It does not fail the test, so that it can run beside the
// goroutine that injects faults; the caller reports the error.
func uploadAll(ctx context.Context, base string, paths []string) ([]string, error) {
	c := &apiClient{base: base, http: http.DefaultClient}
	ids := make([]string, 0, len(paths))
	for _, p := range paths {
		res, err := c.upload(ctx, p, "")
		if err != nil {
			return ids, fmt.Errorf("upload %s: %w", filepath.Base(p), err)
		}
		ids = append(ids, res.ID)
	}
	return ids, nil
}

// countDone is how many documents the database holds as done. It
// returns -1 while the database is unreachable (it may be the fault).
func countDone(dsn string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM documents WHERE status = 'done'`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// waitDone polls until at least n documents are done, and returns when
// that happened.
func waitDone(t *testing.T, dsn string, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if countDone(dsn) >= n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d documents done after %v (now %d)", n, timeout, countDone(dsn))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitProgress polls until more than from documents are done, and
// returns when; ok is false if that did not happen within timeout.
func waitProgress(dsn string, from int, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if countDone(dsn) > from {
			return time.Now(), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, false
}

// assertExactlyOnce checks what "every document done exactly once"
// means from outside the processes: each document is done in run 1,
// every table holds one row per document and natural key (no second run,
// no extra output), the blob store holds two outputs per document, no
// dead letter exists, and, when exactTopics is set, every topic holds
// exactly one committed record per document (the broker was never killed,
// so the transactional guarantee leaves no room for a duplicate).
func assertExactlyOnce(t *testing.T, dsn, broker, blobDir string, docs map[string]docJSON, exactTopics bool) {
	t.Helper()
	n := len(docs)
	pages := 0
	for id, d := range docs {
		if d.Status != "done" {
			t.Errorf("document %s (%s): status %q (%s), want done", id, d.Filename, d.Status, d.Error)
		}
		if d.Run != 1 {
			t.Errorf("document %s: run %d, want 1 (a second run means it was ingested twice)", id, d.Run)
		}
		pages += d.PageCount
	}

	c := assertRowCounts(t, dsn, n)
	for table, want := range map[string]int{"classifications": n, "pages": pages, "dead_letters": 0} {
		if c[table] != want {
			t.Errorf("table %s has %d rows, want %d", table, c[table], want)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT stage, count(*), count(DISTINCT document) FROM stage_runs GROUP BY stage`)
	if err != nil {
		t.Fatal(err)
	}
	perStage := map[string][2]int{}
	for rows.Next() {
		var stage string
		var all, distinct int
		if err := rows.Scan(&stage, &all, &distinct); err != nil {
			t.Fatal(err)
		}
		perStage[stage] = [2]int{all, distinct}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, st := range stageOrder {
		if got := perStage[st]; got != [2]int{n, n} {
			t.Errorf("stage_runs for %s: %d rows over %d documents, want %d over %d", st, got[0], got[1], n, n)
		}
	}
	// Any row of any later run is a document handled twice.
	tables, err := conn.Query(ctx, `SELECT table_name FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name = 'run' GROUP BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(tables, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range names {
		var later int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tb}.Sanitize()+" WHERE run <> 1").Scan(&later); err != nil {
			t.Fatal(err)
		}
		if later != 0 {
			t.Errorf("table %s has %d rows of a run other than 1", tb, later)
		}
	}

	outputs := 0
	_ = filepath.WalkDir(filepath.Join(blobDir, "outputs"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			outputs++
		}
		return nil
	})
	if outputs != 2*n {
		t.Errorf("%d output files in the blob store, want %d (form and reply per document)", outputs, 2*n)
	}

	if dead := consumeAll(t, broker, topology.DeadLetter); len(dead) != 0 {
		var keys []string
		for _, r := range dead {
			keys = append(keys, string(r.Key))
		}
		t.Errorf("%d records in %s, want none; documents %v", len(dead), topology.DeadLetter, keys)
	}
	for _, topic := range topology.Topics {
		if topic == topology.DeadLetter {
			continue
		}
		count := map[string]int{}
		for _, r := range consumeAll(t, broker, topic) {
			count[string(r.Key)]++
		}
		var lost, doubled []string
		for id := range docs {
			switch k := count[id]; {
			case k == 0:
				lost = append(lost, id)
			case k > 1:
				doubled = append(doubled, fmt.Sprintf("%s×%d", id, k))
			}
		}
		slices.Sort(lost)
		slices.Sort(doubled)
		if len(lost) > 0 {
			t.Errorf("%s: no committed record for %d documents (lost): %s", topic, len(lost), strings.Join(lost, " "))
		}
		if len(doubled) > 0 {
			if exactTopics {
				t.Errorf("%s: more than one committed record for %d documents: %s", topic, len(doubled), strings.Join(doubled, " "))
			} else {
				t.Logf("%s: more than one committed record for %d documents (absorbed by persist): %s", topic, len(doubled), strings.Join(doubled, " "))
			}
		}
	}
}

// alive fails the test if p has exited since it was started.
func (p *instance) alive(t *testing.T, name string) {
	t.Helper()
	select {
	case err := <-p.waited:
		p.cmd = nil
		t.Errorf("process %s exited by itself (%v); it should have ridden out the fault", name, err)
	default:
	}
}

// logLines logs up to max lines of p's log that contain any of words, so
// that a failing chaos test shows what the process did about the fault
// and not only its last lines.
func (p *instance) logLines(t *testing.T, name string, max int, words ...string) {
	t.Helper()
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		t.Logf("log of %s: %v", name, err)
		return
	}
	var out []string
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) }) {
			total++
			if len(out) < max {
				out = append(out, line)
			}
		}
	}
	t.Logf("%s: %d log lines mention %q; the first %d:\n%s", name, total, words, len(out), strings.Join(out, "\n"))
}
