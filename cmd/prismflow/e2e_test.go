package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
)

// The end-to-end tests run the real prismflow binary as a separate
// process, talk to it only from outside (HTTP, the Kafka protocol, kcat,
// PostgreSQL), and kill and restart it like an operator or a crash would.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func prismflowBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "prismflow-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "prismflow")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instance is one prismflow process and the addresses it serves.
type instance struct {
	t        testing.TB
	env      []string
	dataDir  string
	api      string // http://host:port
	broker   string
	registry string
	cmd      *exec.Cmd
	waited   chan error
	log      *os.File
}

// startPrismflow runs `prismflow run` with everything embedded except,
// when dsn is not empty, PostgreSQL.
func startPrismflow(t testing.TB, dsn string) *instance {
	return startPrismflowWith(t, dsn, "", "")
}

// startPrismflowWith runs `prismflow run` against an outside broker and
// registry when they are given, so the broker outlives the process.
func startPrismflowWith(t testing.TB, dsn, broker, registryURL string, env ...string) *instance {
	t.Helper()
	p := &instance{
		t:        t,
		dataDir:  t.TempDir(),
		broker:   freeAddr(t),
		registry: freeAddr(t),
	}
	var outside []string
	if broker != "" {
		p.broker = broker
		outside = append(outside, "PRISMFLOW_KAFKA_BROKERS="+broker)
	}
	if registryURL != "" {
		p.registry = strings.TrimPrefix(registryURL, "http://")
		outside = append(outside, "PRISMFLOW_SCHEMA_REGISTRY_URL="+registryURL)
	}
	if dsn == "" && os.Geteuid() == 0 {
		// The private PostgreSQL runs as an unprivileged user when we are
		// root; it must be able to reach its folder under t.TempDir.
		for dir := p.dataDir; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	httpAddr := freeAddr(t)
	p.api = "http://" + httpAddr
	p.env = append(os.Environ(),
		"PRISMFLOW_DATA_DIR="+p.dataDir,
		"PRISMFLOW_HTTP_ADDR="+httpAddr,
		"PRISMFLOW_KAFKA_EMBEDDED_ADDR="+p.broker,
		"PRISMFLOW_SCHEMA_REGISTRY_EMBEDDED_ADDR="+p.registry,
		"PRISMFLOW_POSTGRES_DSN="+dsn,
		"PRISMFLOW_KAFKA_PARTITIONS=3",
		"PRISMFLOW_RUNTIME_RETRY_INITIAL=50ms",
		"PRISMFLOW_RUNTIME_RETRY_MAX=500ms",
	)
	p.env = append(append(p.env, outside...), env...)
	if slices.Contains(env, "PRISMFLOW_HTTP_ADDR=") {
		// A worker without the API serves only the ops endpoints.
		ops := freeAddr(t)
		p.api = "http://" + ops
		p.env = append(p.env, "PRISMFLOW_HTTP_OPS_ADDR="+ops)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.stop()
		}
		if t.Failed() && p.log != nil {
			b, _ := os.ReadFile(p.log.Name())
			t.Logf("prismflow log (last 8 KiB):\n%s", tail(b, 8<<10))
		}
	})
	p.start()
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (p *instance) start() {
	p.t.Helper()
	var err error
	if p.log == nil {
		if p.log, err = os.Create(filepath.Join(p.dataDir, "prismflow.log")); err != nil {
			p.t.Fatal(err)
		}
	}
	p.cmd = exec.Command(prismflowBinary(p.t), "run")
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.waited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(p.cmd, p.waited)
	p.waitReady()
}

// waitReady waits until /readyz says every dependency is reachable.
func (p *instance) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.waited:
			p.cmd = nil
			p.t.Fatalf("prismflow exited during start: %v", err)
		default:
		}
		resp, err := http.Get(p.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatal("prismflow did not become ready within 90s")
}

// stop sends SIGTERM and requires a clean exit 0 (graceful shutdown).
func (p *instance) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.waited:
		p.cmd = nil
		if err != nil {
			p.t.Errorf("prismflow did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.waited
		p.cmd = nil
		p.t.Error("prismflow did not stop within 60s of SIGTERM")
	}
}

// kill stops the process the hard way, as a crash would.
func (p *instance) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.waited
	p.cmd = nil
}

func (p *instance) upload(path string) string {
	p.t.Helper()
	return p.uploadWithPassword(path, "")
}

func (p *instance) uploadWithPassword(path, password string) string {
	p.t.Helper()
	c := &apiClient{base: p.api, http: http.DefaultClient}
	res, err := c.upload(context.Background(), path, password)
	if err != nil {
		p.t.Fatalf("upload %s: %v", path, err)
	}
	return res.ID
}

// docJSON is the document as the test reads it from the API.
type docJSON struct {
	docSummary
	Outputs []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"outputs"`
}

func (p *instance) document(id string) (docJSON, bool) {
	resp, err := http.Get(p.api + "/v1/documents/" + id)
	if err != nil {
		return docJSON{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return docJSON{}, false
	}
	var d docJSON
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		p.t.Fatalf("decode document %s: %v", id, err)
	}
	return d, true
}

// waitFinished polls until every id is done or failed.
func (p *instance) waitFinished(timeout time.Duration, ids ...string) map[string]docJSON {
	p.t.Helper()
	out := map[string]docJSON{}
	deadline := time.Now().Add(timeout)
	for len(out) < len(ids) && time.Now().Before(deadline) {
		for _, id := range ids {
			if _, ok := out[id]; ok {
				continue
			}
			if d, ok := p.document(id); ok && d.finished() {
				out[id] = d
			}
		}
		if len(out) < len(ids) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			d, _ := p.document(id)
			p.t.Fatalf("document %s not finished within %v: status %q stages %v", id, timeout, d.Status, d.Stages)
		}
	}
	return out
}

func (p *instance) get(path string) []byte {
	p.t.Helper()
	resp, err := http.Get(p.api + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b
}

// corpus reads ../shared/corpus/real/manifest.jsonl.
type corpusFile struct {
	Path      string `json:"path"`
	Pages     int    `json:"pages"`
	Encrypted bool   `json:"encrypted"`
	HasText   bool   `json:"has_text"`
}

func sharedDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../../../shared")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "corpus", "real", "manifest.jsonl")); err != nil {
		t.Fatalf("the shared corpus is missing at %s (the tests read real PDFs from ../shared next to the repo): %v", dir, err)
	}
	return dir
}

func realCorpus(t testing.TB) []corpusFile {
	t.Helper()
	dir := filepath.Join(sharedDir(t), "corpus", "real")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var files []corpusFile
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var f corpusFile
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatal(err)
		}
		f.Path = filepath.Join(dir, f.Path)
		files = append(files, f)
	}
	return files
}

// TestEndToEndRealCorpus sends every text-bearing PDF of the real corpus
// through all seven stages of the embedded pipeline (private PostgreSQL
// included, as `make run` does) and checks what the API returns.
func TestEndToEndRealCorpus(t *testing.T) {
	p := startPrismflow(t, "")
	var ids []string
	want := map[string]corpusFile{}
	for _, f := range realCorpus(t) {
		if !f.HasText || f.Encrypted {
			continue
		}
		id := p.upload(f.Path)
		ids = append(ids, id)
		want[id] = f
	}
	docs := p.waitFinished(5*time.Minute, ids...)
	for id, d := range docs {
		f := want[id]
		name := filepath.Base(f.Path)
		if d.Status != "done" {
			t.Errorf("%s: status %s (%s), want done", name, d.Status, d.Error)
			continue
		}
		if d.PageCount != f.Pages {
			t.Errorf("%s: page_count %d, want %d", name, d.PageCount, f.Pages)
		}
		text := 0
		for _, pg := range d.Pages {
			text += len(strings.TrimSpace(pg.Text))
		}
		if text == 0 {
			t.Errorf("%s: no text extracted", name)
		}
		for _, st := range stageOrder {
			if s, ok := d.Stages[st]; !ok || s.Status != "done" {
				t.Errorf("%s: stage %s = %+v, want done", name, st, d.Stages[st])
			}
		}
		if d.Category == "" {
			t.Errorf("%s: no category", name)
		}
		outputs := map[string]string{}
		for _, o := range d.Outputs {
			outputs[o.Name] = o.URL
		}
		form := p.get(outputs["form.pdf"])
		if !bytes.HasPrefix(form, []byte("%PDF-")) {
			t.Errorf("%s: form.pdf is not a PDF", name)
		}
		if _, err := mail.ReadMessage(bytes.NewReader(p.get(outputs["reply.eml"]))); err != nil {
			t.Errorf("%s: reply.eml does not parse: %v", name, err)
		}
	}

	// Stop (SIGTERM: drain, commit, exit 0) and start again on the same
	// data directory: documents, results and topics are all still there.
	p.stop()
	p.start()
	for id, before := range docs {
		after, ok := p.document(id)
		if !ok || after.Status != before.Status || len(after.Pages) != len(before.Pages) || len(after.Outputs) != len(before.Outputs) {
			t.Errorf("document %s after restart: found %v, status %q, %d pages, %d outputs; before: %q, %d, %d",
				id, ok, after.Status, len(after.Pages), len(after.Outputs), before.Status, len(before.Pages), len(before.Outputs))
		}
	}
	if n := len(consumeAll(t, p.broker, topology.DocumentReceived)); n != len(ids) {
		t.Errorf("%s holds %d records after restart, want %d", topology.DocumentReceived, n, len(ids))
	}
}

// TestStagesAsSeparateProcesses runs the pipeline as two processes of the
// same binary, each with some of the stages, against one outside broker,
// registry and database, as a scaled-out deployment does.
func TestStagesAsSeparateProcesses(t *testing.T) {
	shared := sharedDir(t)
	dsn := testenv.Postgres(t)
	brokers := testenv.Kafka(t)
	registryURL := testenv.Registry(t, brokers)
	blobs := "PRISMFLOW_BLOB_URL=file://" + t.TempDir() // shared, like a bucket

	front := startPrismflowWith(t, dsn, brokers[0], registryURL, blobs, "PRISMFLOW_STAGES=analyze,classify,render,persist")
	worker := startPrismflowWith(t, dsn, brokers[0], registryURL, blobs, "PRISMFLOW_STAGES=ingest,extract,split", "PRISMFLOW_HTTP_ADDR=")

	id := front.upload(filepath.Join(shared, "corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf"))
	d := front.waitFinished(2*time.Minute, id)[id]
	if d.Status != "done" || d.PageCount != 4 {
		t.Errorf("status %q (%s), %d pages; want done with 4 pages", d.Status, d.Error, d.PageCount)
	}
	for _, st := range stageOrder {
		if s := d.Stages[st]; s.Status != "done" {
			t.Errorf("stage %s = %+v, want done", st, s)
		}
	}
	// The worker, API-less, still exposes its own metrics.
	metrics := string(worker.get("/metrics"))
	for _, want := range []string{
		`prismflow_stage_events_consumed_total{stage="extract",topic="prismflow.document-received.v1"} 1`,
		`prismflow_stage_consumer_lag{partition=`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("worker /metrics lacks %s", want)
		}
	}
}

// TestBadInputDeadLettersAndPipelineGoesOn: encrypted and corrupt files
// end failed with a clear error and a dead-letter record, while the next
// document still completes.
func TestBadInputDeadLettersAndPipelineGoesOn(t *testing.T) {
	shared := sharedDir(t)
	p := startPrismflow(t, testenv.Postgres(t))

	good := filepath.Join(shared, "corpus/real/001-trivial/minimal-document.pdf")
	encrypted := filepath.Join(shared, "corpus/real/005-libreoffice-writer-password/libreoffice-writer-password.pdf")
	whole, err := os.ReadFile(filepath.Join(shared, "corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "truncated.pdf")
	if err := os.WriteFile(corrupt, whole[:len(whole)/3], 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bomb, huge := filepath.Join(dir, "bomb.png"), filepath.Join(dir, "10000-pages.pdf")
	if err := os.WriteFile(bomb, testenv.BombPNG(100000, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(huge, testenv.ManyPagesPDF(10000), 0o644); err != nil {
		t.Fatal(err)
	}

	encID, corruptID, bombID, hugeID, goodID := p.upload(encrypted), p.upload(corrupt), p.upload(bomb), p.upload(huge), p.upload(good)
	docs := p.waitFinished(2*time.Minute, encID, corruptID, bombID, hugeID, goodID)
	if d := docs[bombID]; d.Status != "failed" || !strings.Contains(d.Error, "pixel limit") {
		t.Errorf("decompression bomb: status %q error %q, want failed on the pixel limit", d.Status, d.Error)
	}
	if d := docs[hugeID]; d.Status != "failed" || !strings.Contains(d.Error, "10000 pages") {
		t.Errorf("10,000-page PDF: status %q error %q, want failed on the page limit", d.Status, d.Error)
	}

	if d := docs[encID]; d.Status != "failed" || !strings.Contains(strings.ToLower(d.Error), "encrypt") {
		t.Errorf("encrypted PDF: status %q error %q, want failed mentioning encryption", d.Status, d.Error)
	}
	if d := docs[corruptID]; d.Status != "failed" || d.Error == "" {
		t.Errorf("truncated PDF: status %q error %q, want failed with an error", d.Status, d.Error)
	}
	if d := docs[goodID]; d.Status != "done" {
		t.Errorf("good PDF after the bad ones: status %q (%s), want done", d.Status, d.Error)
	}

	// The dead-letter topic holds one record per bad document, with the
	// original bytes and the stage that gave up.
	dead := consumeAll(t, p.broker, topology.DeadLetter)
	byDoc := map[string]int{}
	for _, r := range dead {
		byDoc[string(r.Key)]++
		if len(r.Value) < 5 || r.Value[0] != 0 {
			t.Errorf("dead letter is not Confluent framed: % x", r.Value[:min(len(r.Value), 8)])
		}
	}
	if byDoc[encID] != 1 || byDoc[corruptID] != 1 || byDoc[bombID] != 1 || byDoc[hugeID] != 1 || byDoc[goodID] != 0 {
		t.Errorf("dead letters per document = %v, want one each for the four bad files and none for %s", byDoc, goodID)
	}
}

func consumeAll(t testing.TB, broker, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The topic is quiet by now (every document finished), so reading
	// until three fetches in a row bring nothing reads it whole; offsets
	// cannot tell, because transaction markers occupy offsets too.
	deadline := time.Now().Add(60 * time.Second)
	var out []*kgo.Record
	for idle := 0; idle < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("consume %s: still receiving records after 60s", topic)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		recs := fs.Records()
		if len(recs) == 0 {
			idle++
			continue
		}
		idle = 0
		out = append(out, recs...)
	}
	return out
}

// TestRestartMidStreamLosesNothingDuplicatesNothing kills the whole
// process while documents are in flight, starts it again on the same data
// directory, and checks that every document completes exactly once.
func TestRestartMidStreamLosesNothingDuplicatesNothing(t *testing.T) {
	shared := sharedDir(t)
	dsn := testenv.Postgres(t)
	p := startPrismflow(t, dsn)

	files := []string{
		"corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf",
		"corpus/real/006-pdflatex-outline/pdflatex-outline.pdf",
		"corpus/real/026-latex-multicolumn/multicolumn.pdf",
		"corpus/real/001-trivial/minimal-document.pdf",
		"corpus/real/011-google-doc-document/google-doc-document.pdf",
		"corpus/real/014-outlines/mistitled_outlines_example.pdf",
	}
	var ids []string
	for round := 0; round < 3; round++ {
		for _, f := range files {
			ids = append(ids, p.upload(filepath.Join(shared, f)))
		}
	}
	// Crash while the stages are working, then come back.
	p.kill()
	p.start()
	docs := p.waitFinished(5*time.Minute, ids...)
	for id, d := range docs {
		if d.Status != "done" {
			t.Errorf("document %s: %s (%s), want done", id, d.Status, d.Error)
		}
	}

	// Nothing lost: every document has a committed record on every topic.
	// A duplicate on an intermediate topic is possible only when the kill
	// lands inside the embedded broker's commit (kfake writes the commit
	// markers before the consumed offsets, where Kafka's coordinator
	// would complete a prepared commit after a crash); the persist stage
	// absorbs it, which the row counts below check.
	for _, topic := range topology.Topics[:len(topology.Topics)-1] {
		count := map[string]int{}
		for _, r := range consumeAll(t, p.broker, topic) {
			count[string(r.Key)]++
		}
		for _, id := range ids {
			switch n := count[id]; {
			case n == 0:
				t.Errorf("%s: no committed record for document %s: lost", topic, id)
			case n > 1:
				t.Logf("%s: %d committed records for document %s (crash inside the embedded broker's commit)", topic, n, id)
			}
		}
	}
	// Nothing written twice: one row per document, two outputs each, and
	// one file per output in the blob store.
	c := assertRowCounts(t, dsn, len(ids))
	pages := 0
	for _, d := range docs {
		pages += d.PageCount
	}
	if c["pages"] != pages {
		t.Errorf("pages table has %d rows, want %d", c["pages"], pages)
	}
	var outputs int
	_ = filepath.WalkDir(filepath.Join(p.dataDir, "blobs", "outputs"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			outputs++
		}
		return nil
	})
	if outputs != 2*len(ids) {
		t.Errorf("%d output files in the blob store, want %d", outputs, 2*len(ids))
	}
}

// rowCounts counts the rows of every table the persist stage writes.
func rowCounts(t testing.TB, dsn string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, tb := range tables {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tb}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[tb] = n
	}
	return counts
}

func assertRowCounts(t testing.TB, dsn string, docs int) map[string]int {
	t.Helper()
	c := rowCounts(t, dsn)
	defer func() { t.Logf("row counts: %v", c) }()
	if c["documents"] != docs {
		t.Errorf("documents table has %d rows, want %d", c["documents"], docs)
	}
	if c["outputs"] != 2*docs {
		t.Errorf("outputs table has %d rows, want %d (form and reply per document)", c["outputs"], 2*docs)
	}
	return c
}

// TestReplayFromOffsetZeroChangesNoRowCount re-reads every topic from the
// beginning through the persist stage and checks that no table grows. The
// broker runs outside prismflow here, as in production, so that the
// persist group can be rewound while the stage is stopped.
func TestReplayFromOffsetZeroChangesNoRowCount(t *testing.T) {
	shared := sharedDir(t)
	dsn := testenv.Postgres(t)
	brokers := testenv.Kafka(t)
	p := startPrismflowWith(t, dsn, brokers[0], testenv.Registry(t, brokers))
	var ids []string
	for _, f := range []string{"corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf", "corpus/real/021-pdfa/crazyones-pdfa.pdf"} {
		ids = append(ids, p.upload(filepath.Join(shared, f)))
	}
	p.waitFinished(2*time.Minute, ids...)
	before := rowCounts(t, dsn)
	p.stop()

	// Rewind the persist stage's group to offset 0 on every topic while
	// the stage is stopped, as an operator would, remembering where it was.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	caughtUp, err := adm.FetchOffsets(ctx, "prismflow-persist")
	if err != nil || caughtUp.Error() != nil {
		t.Fatalf("persist group offsets: %v %v", err, caughtUp.Error())
	}
	starts, err := adm.ListStartOffsets(ctx, topology.Topics...)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adm.CommitOffsets(ctx, "prismflow-persist", starts.Offsets())
	if err != nil || resp.Error() != nil {
		t.Fatalf("rewind persist group: %v %v", err, resp.Error())
	}

	p.start()
	waitCommitted(t, adm, "prismflow-persist", caughtUp.Offsets())
	after := rowCounts(t, dsn)
	for tb, n := range before {
		if after[tb] != n {
			t.Errorf("table %s: %d rows after replay, %d before", tb, after[tb], n)
		}
	}
	if before["documents"] != len(ids) {
		t.Errorf("documents before replay = %d, want %d", before["documents"], len(ids))
	}
}

// waitCommitted polls until group has committed at least want on every
// partition: the replay has been read through to where it was.
func waitCommitted(t *testing.T, adm *kadm.Client, group string, want kadm.Offsets) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		got, err := adm.FetchOffsets(context.Background(), group)
		if err == nil && got.Error() == nil {
			behind := 0
			want.Each(func(o kadm.Offset) {
				if g, ok := got.Lookup(o.Topic, o.Partition); !ok || g.At < o.At {
					behind++
				}
			})
			if behind == 0 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s did not reach its earlier offsets within 2 minutes", group)
}

// TestOutsideClientReadsConfluentAvro reads a topic with kcat (librdkafka,
// nothing of prismflow's) and decodes the value with the schema the
// embedded registry serves for the id in the value's header.
func TestOutsideClientReadsConfluentAvro(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: apt-get install kcat (make test-deps does it)")
	}
	shared := sharedDir(t)
	p := startPrismflow(t, testenv.Postgres(t))
	id := p.upload(filepath.Join(shared, "corpus/real/001-trivial/minimal-document.pdf"))

	out, err := exec.Command(kcat, "-C", "-b", p.broker, "-t", topology.DocumentReceived, "-e", "-c", "1", "-f", "%s").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	if len(out) < 5 || out[0] != 0 {
		t.Fatalf("value does not start with the Confluent magic byte: % x", out[:min(len(out), 8)])
	}
	schemaID := binary.BigEndian.Uint32(out[1:5])

	resp, err := http.Get(fmt.Sprintf("http://%s/schemas/ids/%d", p.registry, schemaID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Schema string `json:"schema"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /schemas/ids/%d: %s %v", schemaID, resp.Status, err)
	}
	codec, err := goavro.NewCodec(s.Schema)
	if err != nil {
		t.Fatalf("registry schema %d does not parse: %v", schemaID, err)
	}
	native, rest, err := codec.NativeFromBinary(out[5:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode with registry schema: %v (%d bytes left)", err, len(rest))
	}
	doc := native.(map[string]any)["document"].(map[string]any)
	if doc["id"] != id || doc["filename"] != "minimal-document.pdf" {
		t.Errorf("decoded document = %v, want id %s and filename minimal-document.pdf", doc, id)
	}
}

// listedDoc is a document as the test reads it from GET /v1/documents.
type listedDoc struct {
	ID          string    `json:"id"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	ParentID    string    `json:"parent_id"`
	Sender      string    `json:"sender"`
	Subject     string    `json:"subject"`
	Status      string    `json:"status"`
	Error       string    `json:"error"`
	PageCount   int       `json:"page_count"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// children lists the documents whose parent is parentID.
func (p *instance) children(parentID string) []listedDoc {
	p.t.Helper()
	var page struct {
		Documents []listedDoc `json:"documents"`
	}
	if err := json.Unmarshal(p.get("/v1/documents?parent_id="+parentID), &page); err != nil {
		p.t.Fatalf("decode document list: %v", err)
	}
	return page.Documents
}

// TestEmailAttachmentsBecomeDocuments uploads a broker's e-mail with two
// PDF attachments: the e-mail is a document with its sender and subject,
// and each attachment becomes a document of its own, linked to it, that
// goes through the whole pipeline.
func TestEmailAttachmentsBecomeDocuments(t *testing.T) {
	shared := sharedDir(t)
	dir := filepath.Join(shared, "corpus/insurance-dev/0005")
	p := startPrismflow(t, testenv.Postgres(t))
	mailID := p.upload(filepath.Join(dir, "message.eml"))

	mail := p.waitFinished(3*time.Minute, mailID)[mailID]
	if mail.Status != "done" {
		t.Fatalf("e-mail: status %q (%s), want done", mail.Status, mail.Error)
	}
	var head struct {
		ContentType string `json:"content_type"`
		Sender      string `json:"sender"`
		Subject     string `json:"subject"`
	}
	if err := json.Unmarshal(p.get("/v1/documents/"+mailID), &head); err != nil {
		t.Fatal(err)
	}
	const subject = "Murgia Food - rinnovo flotta automezzi (elenco + statistica sinistri)"
	if head.ContentType != "message/rfc822" || !strings.Contains(head.Sender, "flotta@murgiafood.it") || head.Subject != subject {
		t.Errorf("e-mail document: type %q sender %q subject %q; want message/rfc822 from flotta@murgiafood.it about %q",
			head.ContentType, head.Sender, head.Subject, subject)
	}

	// The attachments arrive through the ingest stage after the e-mail's
	// text: poll the listing until both are there.
	var kids []listedDoc
	deadline := time.Now().Add(2 * time.Minute)
	for kids = p.children(mailID); len(kids) < 2 && time.Now().Before(deadline); kids = p.children(mailID) {
		time.Sleep(200 * time.Millisecond)
	}
	if len(kids) != 2 {
		t.Fatalf("%d documents with parent_id %s, want 2: %+v", len(kids), mailID, kids)
	}
	wantSum := map[string]string{}
	for name, file := range map[string]string{"Elenco_automezzi.pdf": "attachment-1.pdf", "Statistica_sinistri_2021-2025.pdf": "attachment-2.pdf"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		wantSum[name] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	var ids []string
	for _, k := range kids {
		ids = append(ids, k.ID)
		if k.ParentID != mailID || k.ContentType != "application/pdf" || k.Subject != subject || k.Sender != head.Sender {
			t.Errorf("attachment %s: %+v; want a PDF with parent %s and the e-mail's sender and subject", k.Filename, k, mailID)
		}
		if k.ID == mailID {
			t.Errorf("attachment %s has its parent's id", k.Filename)
		}
	}
	for id, d := range p.waitFinished(3*time.Minute, ids...) {
		if d.Status != "done" || d.PageCount == 0 {
			t.Errorf("attachment %s (%s): status %q (%s), %d pages; want done", id, d.Filename, d.Status, d.Error, d.PageCount)
		}
		var full struct {
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(p.get("/v1/documents/"+id), &full); err != nil {
			t.Fatal(err)
		}
		if want, ok := wantSum[d.Filename]; !ok || full.SHA256 != want {
			t.Errorf("attachment %s: sha256 %s, want the corpus file's %s", d.Filename, full.SHA256, want)
		}
	}
	// Exactly one DocumentReceived per document: the e-mail and its two
	// attachments, each keyed by its own id.
	keys := map[string]int{}
	for _, r := range consumeAll(t, p.broker, topology.DocumentReceived) {
		keys[string(r.Key)]++
	}
	if len(keys) != 3 || keys[mailID] != 1 || keys[ids[0]] != 1 || keys[ids[1]] != 1 {
		t.Errorf("%s records per key = %v, want one each for %s, %s, %s", topology.DocumentReceived, keys, mailID, ids[0], ids[1])
	}
}

// TestEncryptedPDFOpensWithPassword uploads the encrypted PDF with the
// password that opens it: it goes through like any other document.
func TestEncryptedPDFOpensWithPassword(t *testing.T) {
	shared := sharedDir(t)
	p := startPrismflow(t, testenv.Postgres(t))
	id := p.uploadWithPassword(filepath.Join(shared, "corpus/real/005-libreoffice-writer-password/libreoffice-writer-password.pdf"), "openpassword")
	d := p.waitFinished(2*time.Minute, id)[id]
	if d.Status != "done" {
		t.Fatalf("status %q (%s), want done", d.Status, d.Error)
	}
	text := 0
	for _, pg := range d.Pages {
		text += len(strings.TrimSpace(pg.Text))
	}
	if d.PageCount == 0 || text == 0 {
		t.Errorf("%d pages, %d characters of text; want the document's text", d.PageCount, text)
	}
}
