// Package topology is the whole data path of prismflow in one place: every
// topic, and every stage with its input topic(s), output topic and
// handler, in the order a document travels. Read this file to learn the
// pipeline; everything else is either a stage's domain logic
// (prismflow/stages/...) or the Kafka runtime (prismflow/pipeline).
//
//	upload/IMAP ──ingest──▶ document-received ──extract──▶ text-extracted
//	  ──split──▶ sections-split ──analyze──▶ sections-analyzed
//	  ──classify──▶ document-classified ──render──▶ form-rendered
//	text-extracted ──ingest──▶ document-received  (attachments, 0..n per document)
//	persist consumes all of them (and the dead letters) into PostgreSQL.
//
// Every topic is keyed by document id, so all events of one document stay
// in order on one partition.
package topology

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/pipeline/config"
	"prismflow/stages/analyze"
	"prismflow/stages/classify"
	"prismflow/stages/extract"
	"prismflow/stages/extract/ocr"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
	"prismflow/stages/render"
	"prismflow/stages/split"
)

// Topics, one per event type.
const (
	DocumentReceived   = "prismflow.document-received.v1"
	TextExtracted      = "prismflow.text-extracted.v1"
	SectionsSplit      = "prismflow.sections-split.v1"
	SectionsAnalyzed   = "prismflow.sections-analyzed.v1"
	DocumentClassified = "prismflow.document-classified.v1"
	FormRendered       = "prismflow.form-rendered.v1"
	DeadLetter         = "prismflow.deadletter.v1"
)

// Topics lists every topic prismflow creates at start.
var Topics = []string{DocumentReceived, TextExtracted, SectionsSplit, SectionsAnalyzed, DocumentClassified, FormRendered, DeadLetter}

// Inputs names each consumer stage's input topics: what a replay of the
// stage sends again. A test holds it equal to the routes Stages builds.
var Inputs = map[string][]string{
	"ingest":   {TextExtracted},
	"extract":  {DocumentReceived},
	"split":    {TextExtracted},
	"analyze":  {SectionsSplit},
	"classify": {SectionsAnalyzed},
	"render":   {DocumentClassified},
	"persist":  {DocumentReceived, TextExtracted, SectionsSplit, SectionsAnalyzed, DocumentClassified, FormRendered, DeadLetter},
}

// extractBatch is the extract stage's records per transaction (see
// pipeline.Stage.BatchSize): a few documents per OCR worker.
const extractBatch = 8

// Version is stamped on every event as the producing stage's version.
// Bump it when a stage's output changes meaning.
const Version = "0.1.0"

// Names lists the stages in the order a document travels. ingest runs
// wherever documents arrive (the HTTP API, the CLI, the IMAP connector)
// and produces to DocumentReceived; as a consumer it also turns the
// attachments in TextExtracted into documents of their own.
var Names = []string{"ingest", "extract", "split", "analyze", "classify", "render", "persist"}

// Deps is what the stages need from the process that runs them.
type Deps struct {
	Config config.Config
	Blobs  blob.Store
	Store  *persist.Store // needed by persist; analyze caches LLM answers in it when set
	// Registerer takes the LLM metrics; nil: not exported.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// NoStage, as the whole stage list, runs no stage at all: a process that
// only serves the API, the console and the connectors, in front of stage
// workers elsewhere.
const NoStage = "none"

// Stages builds the consumer stages named in names (all when empty).
func Stages(d Deps, names []string) ([]pipeline.Stage, error) {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if slices.Equal(names, []string{NoStage}) {
		return nil, nil
	}
	for _, n := range names {
		if !slices.Contains(Names, n) {
			return nil, fmt.Errorf("topology: unknown stage %q (stages: %s)", n, strings.Join(Names, ", "))
		}
	}
	want := func(n string) bool { return len(names) == 0 || slices.Contains(names, n) }
	c := d.Config

	var out []pipeline.Stage
	if want("extract") {
		// One OCR engine for the process: it caps OCR workers over all
		// documents the stage handles at once.
		engine, err := ocr.New(context.Background(), ocr.Config{Languages: c.Extract.OCRLanguages, DPI: c.Extract.OCRDPI,
			MaxPixels: c.Extract.MaxPixels, PageTimeout: c.Extract.PageTimeout, Workers: c.Extract.OCRWorkers})
		if err != nil {
			return nil, err
		}
		ex := &extract.Extractor{Blobs: d.Blobs, MaxPages: c.Extract.MaxPages, MaxBytes: c.Ingest.MaxBytes, OCR: engine}
		// Small batches: a batch commits when its slowest document is
		// extracted, and one scanned document takes seconds of OCR.
		out = append(out, pipeline.Stage{Name: "extract", Version: Version, Output: TextExtracted, BatchSize: extractBatch,
			Routes: []pipeline.Route{pipeline.Transform(DocumentReceived, ex.Handle)}})
	}
	if want("ingest") {
		// A fan-out: each attachment is a document of its own, keyed by
		// its own id, produced with the parent's offset commit.
		un := &ingest.Unpacker{Blobs: d.Blobs, MaxBytes: c.Ingest.MaxBytes}
		out = append(out, pipeline.Stage{Name: "ingest", Version: Version, Output: DocumentReceived,
			Routes: []pipeline.Route{pipeline.TransformMany(TextExtracted, un.Attachments)}})
	}
	if want("split") {
		sp := &split.Splitter{}
		out = append(out, pipeline.Stage{Name: "split", Version: Version, Output: SectionsSplit,
			Routes: []pipeline.Route{pipeline.Transform(TextExtracted, sp.Handle)}})
	}
	if want("analyze") {
		provider, err := analyzeProvider(d)
		if err != nil {
			return nil, err
		}
		an := &analyze.Analyzer{Provider: provider, Concurrency: c.Analyze.Concurrency}
		out = append(out, pipeline.Stage{Name: "analyze", Version: Version, Output: SectionsAnalyzed,
			Routes: []pipeline.Route{pipeline.Transform(SectionsSplit, an.Handle)}})
	}
	if want("classify") {
		cl, err := classify.Open(c.Classify.Taxonomy, c.Classify.Model, c.Classify.ReviewThreshold)
		if err != nil {
			return nil, err
		}
		if err := classifyLLM(d, cl); err != nil {
			return nil, err
		}
		out = append(out, pipeline.Stage{Name: "classify", Version: Version, Output: DocumentClassified,
			Routes: []pipeline.Route{pipeline.Transform(SectionsAnalyzed, cl.Handle)}})
	}
	if want("render") {
		// Every category of the taxonomy needs its reply template and
		// its form; a missing one fails here, at start, not at the
		// first document.
		var categories []string
		if c.Classify.Taxonomy != "" {
			cl, err := classify.Open(c.Classify.Taxonomy, c.Classify.Model, c.Classify.ReviewThreshold)
			if err != nil {
				return nil, err
			}
			if categories, err = cl.Categories(); err != nil {
				return nil, err
			}
		}
		var templates fs.FS
		if c.Render.Templates != "" {
			templates = os.DirFS(c.Render.Templates)
		}
		var forms fs.FS
		if c.Render.Forms != "" {
			forms = os.DirFS(c.Render.Forms)
		}
		re, err := render.NewWithOptions(d.Blobs, render.Options{From: c.Render.From, Taxonomy: categories, Templates: templates, Forms: forms})
		if err != nil {
			return nil, err
		}
		out = append(out, pipeline.Stage{Name: "render", Version: Version, Output: FormRendered,
			Routes: []pipeline.Route{pipeline.Transform(DocumentClassified, re.Handle)}})
	}
	if want("persist") {
		if d.Store == nil {
			return nil, fmt.Errorf("topology: persist needs a PostgreSQL store")
		}
		p := &persist.Persister{Store: d.Store, Version: Version}
		out = append(out, pipeline.Stage{Name: "persist", Version: Version, Routes: []pipeline.Route{
			pipeline.Sink(DocumentReceived, p.Received),
			pipeline.Sink(TextExtracted, p.Extracted),
			pipeline.Sink(SectionsSplit, p.Split),
			pipeline.Sink(SectionsAnalyzed, p.Analyzed),
			pipeline.Sink(DocumentClassified, p.Classified),
			pipeline.Sink(FormRendered, p.Rendered),
			pipeline.Sink(DeadLetter, p.DeadLettered),
		}})
	}
	for i := range out {
		out[i].Concurrency = c.Stage.Concurrency
	}
	return out, nil
}

func analyzeProvider(d Deps) (analyze.Provider, error) {
	switch name := d.Config.Analyze.Provider; name {
	case "", "rules":
		return analyze.NewRules(nil), nil
	case "openai", "bedrock":
		var pool *pgxpool.Pool
		if d.Store != nil {
			pool = d.Store.Pool()
		}
		// Building a client makes no network call (the AWS chain is
		// resolved lazily), so no caller context is needed here.
		p, err := analyze.OpenLLM(context.Background(), name, d.Config.LLM, pool, d.Registerer, d.Log)
		if err != nil {
			return nil, fmt.Errorf("topology: %w", err)
		}
		return p, nil
	default:
		return nil, fmt.Errorf("topology: unknown analyze provider %q (providers: rules, openai, bedrock)", name)
	}
}

// classifyLLM gives the classifier its LLM second opinion when
// classify.provider names one; the built-in model runs either way. The
// client shares the response cache pool and the metrics registerer with
// analyze's.
func classifyLLM(d Deps, cl *classify.Classifier) error {
	switch name := d.Config.Classify.Provider; name {
	case "", "rules":
		return nil
	case "openai", "bedrock":
		var pool *pgxpool.Pool
		if d.Store != nil {
			pool = d.Store.Pool()
		}
		// Building a client makes no network call, as for analyze.
		if err := cl.UseLLM(context.Background(), name, d.Config.LLM, pool, d.Registerer, d.Log); err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("topology: unknown classify provider %q (providers: rules, openai, bedrock)", name)
	}
}
