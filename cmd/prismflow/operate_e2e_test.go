package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
)

// cli runs a prismflow command against p's broker, registry and API.
func (p *instance) cli(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(prismflowBinary(p.t), args...)
	cmd.Env = append(os.Environ(),
		"PRISMFLOW_KAFKA_BROKERS="+p.broker,
		"PRISMFLOW_SCHEMA_REGISTRY_URL=http://"+p.registry,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("prismflow %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *instance) restartWith(env ...string) {
	p.t.Helper()
	p.stop()
	p.env = append(p.env, env...)
	p.start()
}

func (p *instance) deadLetters(doc string) []pipeline.DeadLetterRecord {
	p.t.Helper()
	var dls []pipeline.DeadLetterRecord
	if err := json.Unmarshal([]byte(p.cli("deadletter", "list", "--json", "--document", doc)), &dls); err != nil {
		p.t.Fatal(err)
	}
	return dls
}

// TestRedriveAFixedDeadLetter: a document fails on a limit, the operator
// raises the limit and redrives it, and it completes; a redriven record
// that fails again returns to the dead-letter topic with its attempts.
func TestRedriveAFixedDeadLetter(t *testing.T) {
	shared := sharedDir(t)
	brokers := testenv.Kafka(t)
	p := startPrismflowWith(t, testenv.Postgres(t), brokers[0], testenv.Registry(t, brokers), "PRISMFLOW_EXTRACT_MAX_PAGES=2")

	long := p.upload(filepath.Join(shared, "corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf"))
	locked := p.upload(filepath.Join(shared, "corpus/real/005-libreoffice-writer-password/libreoffice-writer-password.pdf"))
	docs := p.waitFinished(2*time.Minute, long, locked)
	if d := docs[long]; d.Status != "failed" || !strings.Contains(d.Error, "page") {
		t.Fatalf("4 pages over a 2-page limit: status %q error %q, want failed on the page limit", d.Status, d.Error)
	}
	dls := p.deadLetters(long)
	if len(dls) != 1 || dls[0].Meta.Stage != "extract" || !dls[0].Permanent {
		t.Fatalf("dead letters of %s = %+v, want one permanent from extract", long, dls)
	}

	// Fix the cause (raise the limit) and redrive.
	p.restartWith("PRISMFLOW_EXTRACT_MAX_PAGES=2000")
	out := p.cli("deadletter", "redrive", "--document", long, "--document", locked)
	if !strings.Contains(out, "2 dead letters redriven") {
		t.Errorf("redrive said:\n%s", out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, _ := p.document(long)
		if d.Status == "done" {
			if d.PageCount != 4 {
				t.Errorf("redriven document has %d pages, want 4", d.PageCount)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redriven document still %q (%s)", d.Status, d.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The encrypted PDF was not fixed: it is dead-lettered again, counting.
	for {
		dls := p.deadLetters(locked)
		if len(dls) == 2 {
			if dls[1].Attempts != dls[0].Attempts+1 {
				t.Errorf("attempts %d then %d, want the second one higher by one", dls[0].Attempts, dls[1].Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the redriven encrypted PDF has %d dead letters, want 2", len(dls))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReplayAfterConfigChangeKeepsHistory replays classify for one
// document after changing its review threshold: the new run's results are
// what the API shows, and the first run's stay stored.
func TestReplayAfterConfigChangeKeepsHistory(t *testing.T) {
	shared := sharedDir(t)
	dsn := testenv.Postgres(t)
	brokers := testenv.Kafka(t)
	p := startPrismflowWith(t, dsn, brokers[0], testenv.Registry(t, brokers), "PRISMFLOW_CLASSIFY_REVIEW_THRESHOLD=1")

	id := p.upload(filepath.Join(shared, "corpus/insurance-dev/0001/attachment-1.pdf"))
	other := p.upload(filepath.Join(shared, "corpus/real/001-trivial/minimal-document.pdf"))
	first := p.waitFinished(2*time.Minute, id, other)[id]
	if first.Status != "done" || !first.NeedsReview {
		t.Fatalf("run 1: status %q needs_review %v; want done and flagged (threshold 1)", first.Status, first.NeedsReview)
	}
	before := rowCounts(t, dsn)

	p.restartWith("PRISMFLOW_CLASSIFY_REVIEW_THRESHOLD=0")
	out := p.cli("replay", "--stage", "classify", "--document", id)
	if !strings.Contains(out, "run 2") {
		t.Errorf("replay said:\n%s", out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var second docJSON
	for {
		second, _ = p.document(id)
		if second.Run == 2 && second.Status == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replayed document at run %d status %q", second.Run, second.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if second.NeedsReview {
		t.Error("run 2 still needs review after the threshold went to 0")
	}
	var runs struct {
		Runs []int32 `json:"runs"`
	}
	_ = json.Unmarshal(p.get("/v1/documents/"+id), &runs)
	if len(runs.Runs) != 2 {
		t.Errorf("runs = %v, want [1 2]", runs.Runs)
	}
	var run1 docJSON
	if err := json.Unmarshal(p.get("/v1/documents/"+id+"?run=1"), &run1); err != nil {
		t.Fatal(err)
	}
	if run1.Run != 1 || len(run1.Outputs) != 2 || len(run1.Pages) != first.PageCount {
		t.Errorf("run 1 after the replay: run %d, %d outputs, %d pages; want its own results kept", run1.Run, len(run1.Outputs), len(run1.Pages))
	}

	// Row counts: the replayed document gained a second run of what
	// classify and after write (fields, outputs); nothing else changed.
	after := rowCounts(t, dsn)
	if after["documents"] != before["documents"] || after["pages"] != before["pages"] {
		t.Errorf("documents %d→%d, pages %d→%d: a replay from classify must not touch them",
			before["documents"], after["documents"], before["pages"], after["pages"])
	}
	if after["outputs"] != before["outputs"]+2 {
		t.Errorf("outputs %d→%d, want two more (run 2's form and reply)", before["outputs"], after["outputs"])
	}
	if d, _ := p.document(other); d.Run != 1 {
		t.Errorf("the other document moved to run %d; only the chosen one is replayed", d.Run)
	}
}
