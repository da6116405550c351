package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline"
	"prismflow/stages/persist"
)

// docData is what the document page shows.
type docData struct {
	Doc        persist.DocumentView
	LatestRun  int32
	Categories []string
	Category   categoryView
	Fields     []fieldView
	Chat       []persist.ChatMessage
	ChatOn     bool
	OpsOn      bool
	Stages     []string // a reprocess can start from
	StageList  []stageView
	Images     bool // the original can be rendered page by page
	Form       *persist.OutputView
	Reply      *persist.OutputView
}

// categoryView is the document's category as the reviewer sees it: the
// reviewer's correction over the pipeline's answer.
type categoryView struct {
	Value       string
	Confidence  float64
	NeedsReview bool
	Corrected   bool
	Correction  *persist.CorrectionView
}

// fieldView is one field: the pipeline's value and where it was found,
// and the reviewer's correction if any.
type fieldView struct {
	Name       string
	Value      string
	Source     *persist.FieldView // nil when the span is unknown or the pipeline found none
	Correction *persist.CorrectionView
}

type stageView struct {
	persist.StageView
	Name string
}

// runOf reads ?run=N (0: the latest).
func runOf(r *http.Request) (int32, error) {
	v := r.URL.Query().Get("run")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 {
		return 0, errors.New("run must be a positive number")
	}
	return int32(n), nil
}

func (h *handler) document(w http.ResponseWriter, r *http.Request, rq *request) {
	run, err := runOf(r)
	if err != nil {
		h.fail(w, r, rq, http.StatusBadRequest, err.Error())
		return
	}
	p, err := h.documentPage(r, rq, r.PathValue("id"), run)
	if err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	switch r.URL.Query().Get("done") {
	case "reprocess":
		p.Notice = translate(rq.Lang, "doc.reprocessed")
	case "redrive":
		p.Notice = translate(rq.Lang, "doc.redriven")
	case "nothing":
		p.Notice = translate(rq.Lang, "doc.nothing")
	}
	h.render(w, r, http.StatusOK, "document", p)
}

// documentPage reads everything the document page shows; its fragments
// (a decided feedback item, a corrected field) render from it too.
func (h *handler) documentPage(r *http.Request, rq *request, id string, run int32) (*page, error) {
	ctx, tenant := r.Context(), rq.Session.Tenant
	doc, err := h.Store.DocumentRun(ctx, tenant, id, run)
	if err != nil {
		return nil, err
	}
	d := &docData{Doc: doc, LatestRun: slices.Max(append([]int32{doc.Run}, doc.Runs...)), Categories: h.Categories,
		ChatOn: h.API.Chat != nil, OpsOn: h.Operator != nil, Stages: h.Stages, Images: h.Pages != nil && renderable(doc.ContentType)}
	if d.ChatOn {
		if d.Chat, err = h.Store.ChatHistory(ctx, tenant, id); err != nil {
			return nil, err
		}
	}
	corrections := map[string]*persist.CorrectionView{}
	for i := range doc.Corrections {
		corrections[doc.Corrections[i].Field] = &doc.Corrections[i]
	}
	d.Category = categoryView{Value: doc.Category, Confidence: doc.Confidence, NeedsReview: doc.NeedsReview}
	if c := corrections[persist.CategoryField]; c != nil {
		d.Category.Value, d.Category.Corrected, d.Category.Correction = c.Value, true, c
	}
	if !slices.Contains(d.Categories, d.Category.Value) && d.Category.Value != "" {
		// A category outside the configured taxonomy (an older one)
		// stays selectable, so a correction form never changes it by
		// accident.
		d.Categories = append([]string{d.Category.Value}, d.Categories...)
	}
	seen := map[string]bool{}
	for _, f := range doc.FieldList {
		if seen[f.Name] {
			continue
		}
		seen[f.Name] = true
		fv := fieldView{Name: f.Name, Value: f.Value}
		if f.Start >= 0 && f.End > f.Start {
			src := f
			fv.Source = &src
		}
		if c := corrections[f.Name]; c != nil {
			fv.Value, fv.Correction = c.Value, c
		}
		d.Fields = append(d.Fields, fv)
	}
	// Fields the pipeline did not find but a reviewer filled in.
	for _, c := range doc.Corrections {
		if c.Field != persist.CategoryField && !seen[c.Field] {
			seen[c.Field] = true
			d.Fields = append(d.Fields, fieldView{Name: c.Field, Value: c.Value, Correction: corrections[c.Field]})
		}
	}
	for i := range doc.Outputs {
		switch o := &doc.Outputs[i]; {
		case strings.HasSuffix(o.Name, ".pdf"):
			d.Form = o
		case strings.HasSuffix(o.Name, ".eml"):
			d.Reply = o
		}
	}
	for _, name := range pipelineOrder(doc.Stages) {
		d.StageList = append(d.StageList, stageView{StageView: doc.Stages[name], Name: name})
	}
	return h.newPage(r, rq, doc.Filename, d), nil
}

// pipelineOrder lists a run's stages in the order a document travels
// (ingest first, persist last), unknown ones after, by name.
func pipelineOrder(stages map[string]persist.StageView) []string {
	order := []string{"ingest", "extract", "split", "analyze", "classify", "render", "persist"}
	var out []string
	for _, s := range order {
		if _, ok := stages[s]; ok {
			out = append(out, s)
		}
	}
	var rest []string
	for s := range stages {
		if !slices.Contains(order, s) {
			rest = append(rest, s)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// renderable says whether MuPDF can draw the original's pages.
func renderable(contentType string) bool {
	return contentType == "application/pdf" || strings.HasPrefix(contentType, "image/")
}

// pageImage sends page n of the original as PNG: /documents/{id}/pages/{n}.png?w=WIDTH.
func (h *handler) pageImage(w http.ResponseWriter, r *http.Request, rq *request) {
	num, ok := strings.CutSuffix(r.PathValue("file"), ".png")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 || h.Pages == nil {
		h.fail(w, r, rq, http.StatusNotFound, "")
		return
	}
	width := 800
	if v := r.URL.Query().Get("w"); v != "" {
		if width, err = strconv.Atoi(v); err != nil {
			h.fail(w, r, rq, http.StatusBadRequest, "w must be a number of pixels")
			return
		}
	}
	doc, err := h.Store.Summary(r.Context(), rq.Session.Tenant, r.PathValue("id"))
	if err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	if doc.PageCount > 0 && int32(n) > doc.PageCount {
		h.fail(w, r, rq, http.StatusNotFound, "")
		return
	}
	blobRef, err := h.blobOf(r, rq, doc.ID)
	if err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	png, err := h.Pages.PNG(r.Context(), blobRef, "", n, width)
	if err != nil {
		if pipeline.IsPermanent(err) {
			h.fail(w, r, rq, http.StatusNotFound, "")
			return
		}
		h.Log.Error("console: render page", "document", doc.ID, "page", n, "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	// The original never changes (blobs are content addressed), so a
	// page image may be cached by this browser for a day.
	w.Header().Set("Cache-Control", "private, max-age=86400")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
}

// blobOf returns the blob reference of a document's original. One
// indexed probe rather than the whole document view: a page of 50 images
// asks this 50 times.
func (h *handler) blobOf(r *http.Request, rq *request, id string) (string, error) {
	var ref string
	err := h.Store.Pool().QueryRow(r.Context(), `SELECT blob FROM documents WHERE id = $1 AND tenant = $2`, id, rq.Session.Tenant).Scan(&ref)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("blob of document %s: %w", id, persist.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("blob of document %s: %w", id, err)
	}
	return ref, nil
}

func (h *handler) output(w http.ResponseWriter, r *http.Request, rq *request) {
	h.API.ServeOutput(w, r, rq.Session.Tenant, r.PathValue("id"), r.PathValue("name"))
}

// decide records accept or reject (with a comment) of a feedback item.
func (h *handler) decide(w http.ResponseWriter, r *http.Request, rq *request) {
	id, itemID := r.PathValue("id"), r.PathValue("item")
	action := r.PostFormValue("action")
	if action != "accept" && action != "reject" {
		h.fail(w, r, rq, http.StatusBadRequest, "action must be accept or reject")
		return
	}
	_, err := h.Store.Decide(r.Context(), rq.Session.Tenant, id, itemID, persist.DecisionView{
		Action: action, Comment: strings.TrimSpace(r.PostFormValue("comment")), Actor: rq.Session.Actor})
	if err != nil {
		h.storeError(w, r, rq, "record decision", err)
		return
	}
	if r.Header.Get("HX-Request") == "" {
		back(w, r, "/documents/"+id+"#item-"+itemID)
		return
	}
	p, err := h.documentPage(r, rq, id, 0)
	if err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	doc := p.Data.(*docData).Doc
	for _, f := range allFeedback(doc) {
		if f.ID == itemID {
			h.fragment(w, rq, http.StatusOK, "feedback", itemData{P: p, X: f})
			return
		}
	}
	// Decided on an earlier run's item that the latest run dropped.
	w.Header().Set("HX-Refresh", "true")
	w.WriteHeader(http.StatusOK)
}

func allFeedback(doc persist.DocumentView) []persist.FeedbackView {
	out := slices.Clone(doc.Feedback)
	for _, s := range doc.Sections {
		out = append(out, s.Feedback...)
	}
	return out
}

// correct records a reviewer's value for the category or a field.
func (h *handler) correct(w http.ResponseWriter, r *http.Request, rq *request) {
	id, field := r.PathValue("id"), r.PostFormValue("field")
	value := strings.TrimSpace(r.PostFormValue("value"))
	_, err := h.Store.Correct(r.Context(), rq.Session.Tenant, id, persist.CorrectionView{Field: field, Value: value, Actor: rq.Session.Actor})
	if err != nil {
		h.storeError(w, r, rq, "record correction", err)
		return
	}
	if r.Header.Get("HX-Request") == "" {
		back(w, r, "/documents/"+id)
		return
	}
	p, err := h.documentPage(r, rq, id, 0)
	if err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	d := p.Data.(*docData)
	if field == persist.CategoryField {
		h.fragment(w, rq, http.StatusOK, "category", itemData{P: p, X: d.Category})
		return
	}
	for _, f := range d.Fields {
		if f.Name == field {
			h.fragment(w, rq, http.StatusOK, "field", itemData{P: p, X: f})
			return
		}
	}
	w.Header().Set("HX-Refresh", "true")
	w.WriteHeader(http.StatusOK)
}

// reprocess replays the document from the chosen stage's input as a new
// run, as prismflow replay --stage S --document ID does.
func (h *handler) reprocess(w http.ResponseWriter, r *http.Request, rq *request) {
	id, stage := r.PathValue("id"), r.PostFormValue("stage")
	if h.Operator == nil {
		h.fail(w, r, rq, http.StatusNotFound, "")
		return
	}
	if !slices.Contains(h.Stages, stage) {
		h.fail(w, r, rq, http.StatusBadRequest, "unknown stage "+stage)
		return
	}
	if _, err := h.Store.Summary(r.Context(), rq.Session.Tenant, id); err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	done, err := h.Operator.Reprocess(r.Context(), stage, id)
	if err != nil {
		h.Log.Error("console: reprocess", "document", id, "stage", stage, "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return
	}
	h.Log.Info("console reprocess", "document", id, "stage", stage, "records", len(done), "actor", rq.Session.Actor)
	if len(done) == 0 {
		back(w, r, "/documents/"+id+"?done=nothing")
		return
	}
	back(w, r, "/documents/"+id+"?done=reprocess")
}

// redriveDocument sends the document's dead letters back to their topics.
func (h *handler) redriveDocument(w http.ResponseWriter, r *http.Request, rq *request) {
	id := r.PathValue("id")
	if h.Operator == nil {
		h.fail(w, r, rq, http.StatusNotFound, "")
		return
	}
	if _, err := h.Store.Summary(r.Context(), rq.Session.Tenant, id); err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	dls, ok := h.deadLetters(w, r, rq)
	if !ok {
		return
	}
	n := 0
	for _, d := range latestPerTopic(dls, rq.Session.Tenant, id) {
		if err := h.Operator.Redrive(r.Context(), d); err != nil {
			h.Log.Error("console: redrive", "document", id, "dead_letter", d.ID, "err", err)
			h.fail(w, r, rq, http.StatusServiceUnavailable, "")
			return
		}
		n++
	}
	h.Log.Info("console redrive", "document", id, "records", n, "actor", rq.Session.Actor)
	if n == 0 {
		back(w, r, "/documents/"+id+"?done=nothing")
		return
	}
	back(w, r, "/documents/"+id+"?done=redrive")
}

// latestPerTopic picks the dead letters of a document to redrive: per
// topic the newest, since an older one was either redriven already (and
// failed again, making the newer) or belongs to an earlier run.
func latestPerTopic(dls []pipeline.DeadLetterRecord, tenant, doc string) []pipeline.DeadLetterRecord {
	latest := map[string]pipeline.DeadLetterRecord{}
	var topics []string
	for _, d := range dls {
		if d.DocumentID != doc || d.Tenant != tenant {
			continue
		}
		old, ok := latest[d.Topic]
		if !ok {
			topics = append(topics, d.Topic)
		}
		if !ok || !d.At.Before(old.At) {
			latest[d.Topic] = d
		}
	}
	out := make([]pipeline.DeadLetterRecord, 0, len(topics))
	for _, t := range topics {
		out = append(out, latest[t])
	}
	return out
}
