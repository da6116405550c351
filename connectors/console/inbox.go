package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"prismflow/connectors/httpapi"
	"prismflow/stages/persist"
)

// inboxPageSize is the number of documents per inbox page.
const inboxPageSize = 50

type inboxData struct {
	Docs       []persist.DocumentSummary
	Statuses   []string
	Categories []string
	Status     string
	Category   string
	Q          string
	Since      string // yyyy-mm-dd, as the date inputs send it
	Until      string
	Cursor     string
	NextURL    string
	FirstURL   string
	// InsertLive says whether documents that arrive while the page is
	// open belong at its top: on the first page with no filter only,
	// where "newest first" makes that true.
	InsertLive bool
}

// dateLayout is what <input type=date> sends.
const dateLayout = "2006-01-02"

func (h *handler) inbox(w http.ResponseWriter, r *http.Request, rq *request) {
	q := r.URL.Query()
	d := inboxData{
		Statuses:   []string{persist.StatusProcessing, persist.StatusDone, persist.StatusFailed},
		Categories: h.Categories,
		Status:     q.Get("status"), Category: q.Get("category"), Q: strings.TrimSpace(q.Get("q")),
		Since: q.Get("since"), Until: q.Get("until"), Cursor: q.Get("cursor"),
	}
	lq := persist.ListQuery{Tenant: rq.Session.Tenant, Status: d.Status, Category: d.Category, Query: d.Q,
		Cursor: d.Cursor, Limit: inboxPageSize}
	var err error
	if lq.Since, err = parseDay(d.Since); err != nil {
		h.fail(w, r, rq, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	if lq.Until, err = parseDay(d.Until); err != nil {
		h.fail(w, r, rq, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	if !lq.Until.IsZero() {
		lq.Until = lq.Until.AddDate(0, 0, 1) // the whole "until" day is in
	}
	docs, next, err := h.Store.ListDocuments(r.Context(), lq)
	if err != nil {
		h.storeError(w, r, rq, "list documents", err)
		return
	}
	d.Docs = docs
	filters := url.Values{}
	for k, v := range map[string]string{"status": d.Status, "category": d.Category, "q": d.Q, "since": d.Since, "until": d.Until} {
		if v != "" {
			filters.Set(k, v)
		}
	}
	d.FirstURL = "/?" + filters.Encode()
	if next != "" {
		nq := url.Values{}
		for k, v := range filters {
			nq[k] = v
		}
		nq.Set("cursor", next)
		d.NextURL = "/?" + nq.Encode()
	}
	d.InsertLive = len(filters) == 0 && d.Cursor == ""
	h.render(w, r, http.StatusOK, "inbox", h.newPage(r, rq, translate(rq.Lang, "inbox.title"), d))
}

// parseDay reads a date input's value in the server's time zone, which
// is the one the inbox shows times in.
func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(dateLayout, s, time.Local)
	if err != nil {
		return time.Time{}, errors.New("a date is yyyy-mm-dd")
	}
	return t, nil
}

// inboxRow renders one document's inbox row, for live updates. A
// document not stored yet (its first event is ahead of the persist
// stage) is 204 No Content, not an error the browser would log: app.js
// asks again at the next update. Another tenant's document is the same
// 204, so nothing tells the two apart.
func (h *handler) inboxRow(w http.ResponseWriter, r *http.Request, rq *request) {
	doc, err := h.Store.Summary(r.Context(), rq.Session.Tenant, r.PathValue("id"))
	if errors.Is(err, persist.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		h.storeError(w, r, rq, "read document", err)
		return
	}
	h.fragment(w, rq, http.StatusOK, "row", itemData{P: h.newPage(r, rq, "", nil), X: doc})
}

// events streams the tenant's document updates (Server-Sent Events).
func (h *handler) events(w http.ResponseWriter, r *http.Request, rq *request) {
	if h.Live == nil {
		// 204 tells EventSource not to reconnect.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Live.ServeSSE(w, r, rq.Session.Tenant)
}

// upload receives a file from the upload form through the API's own
// upload code. The CSRF token is a form field before the file (or the
// header), checked before the file is read.
func (h *handler) upload(w http.ResponseWriter, r *http.Request, rq *request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.API.Ingest.MaxBytes+1<<20)
	u, err := httpapi.ReadUpload(r)
	if err != nil {
		if !validCSRF(rq.Session, r.Header.Get(csrfHeader)) {
			h.fail(w, r, rq, http.StatusForbidden, "")
			return
		}
		h.fail(w, r, rq, http.StatusBadRequest, err.Error())
		return
	}
	if !validCSRF(rq.Session, r.Header.Get(csrfHeader)) && !validCSRF(rq.Session, u.Fields["csrf"]) {
		h.fail(w, r, rq, http.StatusForbidden, "")
		return
	}
	resp, err := h.API.Receive(r.Context(), rq.Session.Tenant, "", u)
	var ue *httpapi.UploadError
	if errors.As(err, &ue) {
		msg := ue.Err.Error()
		if ue.Status >= 500 {
			msg = translate(rq.Lang, "error.503")
		}
		if r.Header.Get("HX-Request") != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(ue.Status)
			_, _ = w.Write([]byte(msg))
			return
		}
		p := h.newPage(r, rq, translate(rq.Lang, "error.title"), errorData{Status: ue.Status, Message: msg})
		h.render(w, r, ue.Status, "error", p)
		return
	}
	if r.Header.Get("HX-Request") == "" {
		back(w, r, "/documents/"+resp.ID)
		return
	}
	// The row as it will be once persist has written it; live updates
	// take it from there.
	row := persist.DocumentSummary{ID: resp.ID, Tenant: rq.Session.Tenant, Filename: resp.Filename,
		SizeBytes: resp.SizeBytes, Source: "upload", Status: persist.StatusProcessing, ReceivedAt: time.Now()}
	h.fragment(w, rq, http.StatusOK, "row", itemData{P: h.newPage(r, rq, "", nil), X: row})
}
