package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"prismflow/pipeline"
	"prismflow/stages/analyze/chat"
	"prismflow/stages/persist"
)

// What reviewers add to a document: corrections of its category and
// fields, and questions about it. The console calls the same code.

// correctionRequest is the body of POST /v1/documents/{id}/corrections.
type correctionRequest struct {
	Field string `json:"field"` // "category" or a field name
	Value string `json:"value"`
}

// correct records a reviewer's correction of the category or a field;
// the pipeline's value is kept beside it, and prismflow train reads the
// corrected documents as labelled data.
func (s *Server) correct(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req correctionRequest
	if !decodeBody(w, r, &req, `{"field": "category"|NAME, "value": "..."}`) {
		return
	}
	c, err := s.Store.Correct(r.Context(), tenantOf(r), id, persist.CorrectionView{Field: req.Field, Value: req.Value, Actor: actorOf(r)})
	switch {
	case errors.Is(err, persist.ErrNotFound):
		writeError(w, http.StatusNotFound, "no document "+id)
	case pipeline.IsPermanent(err):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.Log.Error("record correction", "document", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not record the correction; retry")
	default:
		writeJSON(w, http.StatusOK, c)
	}
}

// decodeBody reads a small JSON body into v, answering 400 itself.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, shape string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON "+shape+": "+err.Error())
		return false
	}
	return true
}

func (s *Server) chatHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	msgs, err := s.Store.ChatHistory(r.Context(), tenantOf(r), id)
	switch {
	case errors.Is(err, persist.ErrNotFound):
		writeError(w, http.StatusNotFound, "no document "+id)
	case err != nil:
		s.Log.Error("read chat", "document", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the chat; retry")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
	}
}

// chatRequest is the body of POST /v1/documents/{id}/chat.
type chatRequest struct {
	Question string `json:"question"`
	Language string `json:"language"` // it (default) or en: the language of the answer's own words
}

// ask answers a question about a document: one JSON answer, or with
// Accept: application/x-ndjson a stream of {"delta": "..."} lines as the
// answer is written, ending with {"answer": {...}} (or {"error": "..."}).
func (s *Server) ask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req chatRequest
	if !decodeBody(w, r, &req, `{"question": "...", "language": "it"|"en"}`) {
		return
	}
	if !acceptsNDJSON(r) {
		_, answer, err := s.Ask(r.Context(), tenantOf(r), actorOf(r), id, req.Language, req.Question, nil)
		if err != nil {
			s.askError(w, id, err)
			return
		}
		writeJSON(w, http.StatusOK, answer)
		return
	}
	// The document and the question are checked before the stream
	// starts, so that their errors keep their status codes.
	if err := s.CheckQuestion(r.Context(), tenantOf(r), id, req.Question); err != nil {
		s.askError(w, id, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	_, answer, err := s.Ask(r.Context(), tenantOf(r), actorOf(r), id, req.Language, req.Question, func(delta string) error {
		if err := enc.Encode(map[string]string{"delta": delta}); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.Log.Warn("chat answer", "document", id, "err", err)
		}
		_ = enc.Encode(map[string]string{"error": "no answer: " + publicError(err)})
		return
	}
	_ = enc.Encode(map[string]any{"answer": answer})
}

func (s *Server) askError(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, ErrChatOff):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, persist.ErrNotFound):
		writeError(w, http.StatusNotFound, "no document "+id)
	case pipeline.IsPermanent(err):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.Log.Error("chat answer", "document", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not answer; retry")
	}
}

// publicError is what a client may read of a failed answer.
func publicError(err error) string {
	if pipeline.IsPermanent(err) {
		return err.Error()
	}
	return "the answer could not be produced; retry"
}

func acceptsNDJSON(r *http.Request) bool {
	for _, a := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, _ := mime.ParseMediaType(strings.TrimSpace(a)); mt == "application/x-ndjson" {
			return true
		}
	}
	return false
}

// ErrChatOff is returned by Ask when no chat provider is configured.
var ErrChatOff = errors.New("document chat is not configured")

// maxQuestionRunes bounds a question: it goes into an LLM prompt.
const maxQuestionRunes = 2000

// CheckQuestion says whether Ask would take the question about document
// id of tenant: chat configured, the document there, the question not
// empty nor too long. It lets a streaming caller fail with a status code
// before the stream begins.
func (s *Server) CheckQuestion(ctx context.Context, tenant, id, question string) error {
	if s.Chat == nil {
		return ErrChatOff
	}
	if err := checkQuestion(question); err != nil {
		return err
	}
	if _, err := s.Store.Summary(ctx, tenant, id); err != nil {
		return err
	}
	return nil
}

func checkQuestion(q string) error {
	switch n := utf8.RuneCountInString(strings.TrimSpace(q)); {
	case n == 0:
		return pipeline.Permanent(errors.New("the question is empty"))
	case n > maxQuestionRunes:
		return pipeline.Permanent(fmt.Errorf("the question is longer than %d characters", maxQuestionRunes))
	}
	return nil
}

// Ask answers a question about document id of tenant from its latest
// run's sections and the earlier questions and answers, streaming the
// answer's text through emit (nil: no streaming), and keeps both with
// the document: the question with who asked (actor), the answer with its
// citations, grounding and provider. Nothing is kept when no answer
// comes. An unknown document is persist.ErrNotFound; an empty or overlong
// question is pipeline.Permanent; no chat provider is ErrChatOff.
func (s *Server) Ask(ctx context.Context, tenant, actor, id, lang, question string, emit func(string) error) (q, a persist.ChatMessage, err error) {
	if s.Chat == nil {
		return q, a, ErrChatOff
	}
	if err := checkQuestion(question); err != nil {
		return q, a, err
	}
	question = strings.TrimSpace(question)
	doc, err := s.Store.Document(ctx, tenant, id)
	if err != nil {
		return q, a, err
	}
	history, err := s.Store.ChatHistory(ctx, tenant, id)
	if err != nil {
		return q, a, err
	}
	in := chat.Question{Document: id, Language: lang, Text: question}
	if in.Language != "en" {
		in.Language = "it"
	}
	for _, sec := range doc.Sections {
		in.Sections = append(in.Sections, chat.Section{Index: sec.Index, Title: sec.Title, Text: sec.Text, PageStart: sec.PageStart, PageEnd: sec.PageEnd})
	}
	for _, m := range history {
		in.History = append(in.History, chat.Turn{Role: m.Role, Text: m.Text})
	}
	if emit == nil {
		emit = func(string) error { return nil }
	}
	ans, err := s.Chat.Answer(ctx, in, emit)
	if err != nil {
		return q, a, fmt.Errorf("answer about document %s: %w", id, err)
	}
	// Kept even if the asker went away meanwhile: the answer is paid for.
	ctx = context.WithoutCancel(ctx)
	if q, err = s.Store.AddChatMessage(ctx, tenant, id, persist.ChatMessage{Role: persist.RoleQuestion, Text: question, Actor: actor}); err != nil {
		return q, a, err
	}
	a = persist.ChatMessage{Role: persist.RoleAnswer, Text: ans.Text, Grounding: ans.Grounding, Provider: ans.Provider, Citations: []persist.ChatCitation{}}
	for _, c := range ans.Citations {
		a.Citations = append(a.Citations, persist.ChatCitation{Section: c.Section, Quote: c.Quote})
	}
	if a, err = s.Store.AddChatMessage(ctx, tenant, id, a); err != nil {
		return q, a, err
	}
	return q, a, nil
}
