package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/pipeline/config"
	"prismflow/schemas/events"
	"prismflow/stages/extract"
	"prismflow/stages/extract/ocr"
	"prismflow/stages/split"
)

// labelledItem is one request of a labelled folder (the insurance-dev
// layout): the documents the pipeline makes of it, ready for classify,
// and its truth.
type labelledItem struct {
	ID       string
	Category string
	Fields   map[string]string // numbers and lists written as the classifier writes them
	// Docs are the e-mail first, then each attachment with text, as the
	// split stage hands them on (analyze adds only feedback, which
	// classify carries through without reading).
	Docs []events.SectionsAnalyzed
	// Skipped names attachments the pipeline refuses (a permanent error
	// in extract or split): they would never reach classify.
	Skipped []string
}

// itemReader turns the files of a labelled item into the events classify
// receives, through the extract and split stages' own handlers: the same
// go-message e-mail parsing, MuPDF text layers and tesseract OCR as the
// running pipeline, without Kafka in between. Running the stages in
// process keeps `prismflow eval` a one-command measurement that needs no
// broker, and gives the same texts as long as the stages are pure
// functions of their input, which they are by design.
type itemReader struct {
	blobs blob.Store
	ex    *extract.Extractor
	sp    *split.Splitter
}

// newItemReader builds the extract and split stages as the topology does
// from c, with originals kept in a temporary folder under dir.
func newItemReader(ctx context.Context, c config.Config, dir string, logger *slog.Logger) (*itemReader, error) {
	store, err := blob.NewFile(dir)
	if err != nil {
		return nil, fmt.Errorf("blob folder: %w", err)
	}
	engine, err := ocr.New(ctx, ocr.Config{Languages: c.Extract.OCRLanguages, DPI: c.Extract.OCRDPI,
		MaxPixels: c.Extract.MaxPixels, PageTimeout: c.Extract.PageTimeout, Workers: c.Extract.OCRWorkers})
	if err != nil {
		return nil, fmt.Errorf("OCR (Debian package tesseract-ocr): %w", err)
	}
	return &itemReader{
		blobs: store,
		ex:    &extract.Extractor{Blobs: store, MaxPages: c.Extract.MaxPages, MaxBytes: c.Ingest.MaxBytes, OCR: engine, Logger: logger},
		sp:    &split.Splitter{},
	}, nil
}

// isItem reports whether dir is a labelled item folder.
func isItem(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "truth.json"))
	return err == nil
}

// itemDirs lists the item folders directly under dir, sorted.
func itemDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if p := filepath.Join(dir, e.Name()); e.IsDir() && isItem(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// read loads one item folder: truth.json and message.eml, whose
// attachments become documents of their own as the ingest stage makes
// them (the parent's subject and sender, ParentID set).
func (r *itemReader) read(ctx context.Context, dir string) (labelledItem, error) {
	id := filepath.Base(dir)
	it := labelledItem{ID: id}
	raw, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		return it, err
	}
	var truth struct {
		Category string         `json:"category"`
		Fields   map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(raw, &truth); err != nil {
		return it, fmt.Errorf("%s/truth.json: %w", id, err)
	}
	if truth.Category == "" {
		return it, fmt.Errorf("%s/truth.json: no category", id)
	}
	it.Category, it.Fields = truth.Category, truthFields(truth.Fields)

	eml, err := os.ReadFile(filepath.Join(dir, "message.eml"))
	if err != nil {
		return it, err
	}
	key, sum, size, err := blob.PutContent(ctx, r.blobs, bytes.NewReader(eml))
	if err != nil {
		return it, fmt.Errorf("%s: store e-mail: %w", id, err)
	}
	parent := events.Document{ID: id, Filename: "message.eml", ContentType: extract.TypeEML, SizeBytes: size, SHA256: sum, Blob: key, Source: "eval"}
	text, err := r.ex.Handle(ctx, events.DocumentReceived{Document: parent})
	if err != nil {
		return it, fmt.Errorf("%s: extract e-mail: %w", id, err)
	}
	// The e-mail reader fills the envelope the way ingest does for mail.
	parent = text.Document
	if doc, ok, err := r.sections(ctx, text); err != nil {
		return it, fmt.Errorf("%s: %w", id, err)
	} else if ok {
		it.Docs = append(it.Docs, doc)
	}
	for i, a := range text.Attachments {
		child := events.Document{ID: fmt.Sprintf("%s/%d-%s", id, i+1, a.Filename), Filename: a.Filename, ContentType: a.ContentType,
			SizeBytes: a.SizeBytes, SHA256: a.SHA256, Blob: a.Blob, Source: parent.Source, Sender: parent.Sender,
			Subject: parent.Subject, ParentID: parent.ID}
		at, err := r.ex.Handle(ctx, events.DocumentReceived{Document: child})
		if pipeline.IsPermanent(err) {
			it.Skipped = append(it.Skipped, a.Filename+": "+err.Error())
			continue
		}
		if err != nil {
			return it, fmt.Errorf("%s: extract %s: %w", id, a.Filename, err)
		}
		doc, ok, err := r.sections(ctx, at)
		if err != nil {
			return it, fmt.Errorf("%s: %s: %w", id, a.Filename, err)
		}
		if ok {
			it.Docs = append(it.Docs, doc)
		} else {
			it.Skipped = append(it.Skipped, a.Filename+": no text")
		}
	}
	return it, nil
}

// sections runs the split stage; a document it refuses as permanently
// bad (no text at all) is reported as not ok.
func (r *itemReader) sections(ctx context.Context, in events.TextExtracted) (events.SectionsAnalyzed, bool, error) {
	s, err := r.sp.Handle(ctx, in)
	if pipeline.IsPermanent(err) || errors.Is(err, split.ErrNoText) {
		return events.SectionsAnalyzed{}, false, nil
	}
	if err != nil {
		return events.SectionsAnalyzed{}, false, fmt.Errorf("split: %w", err)
	}
	return events.SectionsAnalyzed{Document: s.Document, PageCount: s.PageCount, Language: s.Language, Sections: s.Sections}, true, nil
}

// truthFields writes truth values as the classifier writes field values:
// numbers without exponent or trailing zeros, lists comma-joined.
func truthFields(in map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		case nil:
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
