package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"prismflow/connectors/httpapi"
	"prismflow/pipeline"
	"prismflow/stages/persist"
)

// streamType is what app.js asks the chat answer in: one JSON object a
// line, {"delta"} while the answer is written, then {"html",
// "grounding"} with the finished answer rendered (citations linked), or
// {"error"}.
const streamType = "application/x-ndjson"

func wantsStream(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), streamType) }

// chat answers a question about the document through the API's chat
// code, which keeps the question and the answer with the document.
// app.js streams the answer into the page; a plain form post gets the
// page back once the answer is complete.
func (h *handler) chat(w http.ResponseWriter, r *http.Request, rq *request) {
	id, question := r.PathValue("id"), r.PostFormValue("question")
	tenant, actor := rq.Session.Tenant, rq.Session.Actor
	if err := h.API.CheckQuestion(r.Context(), tenant, id, question); err != nil {
		h.chatError(w, r, rq, err)
		return
	}
	if !wantsStream(r) {
		if _, _, err := h.API.Ask(r.Context(), tenant, actor, id, rq.Lang, question, nil); err != nil {
			h.chatError(w, r, rq, err)
			return
		}
		back(w, r, "/documents/"+id+"#chat")
		return
	}
	w.Header().Set("Content-Type", streamType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	_, answer, err := h.API.Ask(r.Context(), tenant, actor, id, rq.Lang, question, func(delta string) error {
		if err := enc.Encode(map[string]string{"delta": delta}); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			h.Log.Warn("console: chat answer", "document", id, "err", err)
		}
		msg := translate(rq.Lang, "error.503")
		if pipeline.IsPermanent(err) {
			msg = err.Error()
		}
		_ = enc.Encode(map[string]string{"error": translate(rq.Lang, "chat.failed", msg)})
		return
	}
	var buf bytes.Buffer
	if err := h.views.fragments(rq.Lang).ExecuteTemplate(&buf, "answer", answer); err != nil {
		h.Log.Error("console: render answer", "err", err)
		_ = enc.Encode(map[string]string{"error": translate(rq.Lang, "error.503")})
		return
	}
	_ = enc.Encode(map[string]string{"html": buf.String(), "grounding": answer.Grounding})
}

func (h *handler) chatError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	switch {
	case errors.Is(err, httpapi.ErrChatOff):
		h.fail(w, r, rq, http.StatusNotFound, "")
	case errors.Is(err, persist.ErrNotFound):
		h.fail(w, r, rq, http.StatusNotFound, "")
	case pipeline.IsPermanent(err):
		h.fail(w, r, rq, http.StatusBadRequest, err.Error())
	default:
		h.Log.Error("console: chat", "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
	}
}
