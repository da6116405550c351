package console

import (
	"net/http"
	"slices"

	"prismflow/connectors/console/stats"
	"prismflow/pipeline"
)

type pipelineData struct {
	Stats          []stats.StageStats
	StatsOff       bool
	DeadLetters    []pipeline.DeadLetterRecord
	DeadLettersOff bool
}

// pipeline shows per stage throughput, in-flight, lag and dead letters,
// and the tenant's dead letters with a redrive button each.
func (h *handler) pipeline(w http.ResponseWriter, r *http.Request, rq *request) {
	var d pipelineData
	if h.Stats == nil {
		d.StatsOff = true
	} else {
		st, err := h.Stats(r.Context())
		if err != nil {
			h.Log.Error("console: pipeline stats", "err", err)
			h.fail(w, r, rq, http.StatusServiceUnavailable, "")
			return
		}
		d.Stats = st
	}
	if h.Operator == nil {
		d.DeadLettersOff = true
	} else {
		dls, ok := h.deadLetters(w, r, rq)
		if !ok {
			return
		}
		d.DeadLetters = dls
		// Newest first, as the inbox.
		slices.SortStableFunc(d.DeadLetters, func(a, b pipeline.DeadLetterRecord) int { return b.At.Compare(a.At) })
	}
	p := h.newPage(r, rq, translate(rq.Lang, "pipeline.title"), d)
	if id := r.URL.Query().Get("redriven"); id != "" {
		p.Notice = translate(rq.Lang, "pipeline.redriven", id)
	}
	h.render(w, r, http.StatusOK, "pipeline", p)
}

// redrive sends one dead letter of the tenant back to its topic.
func (h *handler) redrive(w http.ResponseWriter, r *http.Request, rq *request) {
	id := r.PostFormValue("id")
	if h.Operator == nil {
		h.fail(w, r, rq, http.StatusNotFound, "")
		return
	}
	dls, ok := h.deadLetters(w, r, rq)
	if !ok {
		return
	}
	i := slices.IndexFunc(dls, func(d pipeline.DeadLetterRecord) bool { return d.ID == id })
	if i < 0 {
		h.fail(w, r, rq, http.StatusNotFound, "")
		return
	}
	if err := h.Operator.Redrive(r.Context(), dls[i]); err != nil {
		h.Log.Error("console: redrive", "dead_letter", id, "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return
	}
	h.Log.Info("console redrive", "dead_letter", id, "document", dls[i].DocumentID, "actor", rq.Session.Actor)
	back(w, r, "/pipeline?redriven="+id)
}

// deadLetters reads the dead letters of rq's tenant (h.Operator is set).
// When they cannot be read it logs, answers 503 and returns false.
func (h *handler) deadLetters(w http.ResponseWriter, r *http.Request, rq *request) ([]pipeline.DeadLetterRecord, bool) {
	all, err := h.Operator.DeadLetters(r.Context())
	if err != nil {
		h.Log.Error("console: read dead letters", "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return nil, false
	}
	var dls []pipeline.DeadLetterRecord
	for _, d := range all {
		if d.Tenant == rq.Session.Tenant {
			dls = append(dls, d)
		}
	}
	return dls, true
}
