// Package httpapi is prismflow's HTTP interface: upload documents, read
// their results, download outputs, and the health and metrics endpoints
// that operators and orchestrators probe.
//
// An upload is streamed straight to the blob store through ingest (the
// file is never held whole in memory) and answered 202 only once its
// DocumentReceived event is acknowledged by Kafka, so an id the API hands
// out always names a document the pipeline will process.
//
//	POST /v1/documents            multipart "file" (optional "password" field first), or raw body with ?filename=; ?password= too
//	GET  /v1/documents            ?status= &category= &parent_id= &since= &limit= &cursor=
//	GET  /v1/documents/{id}       the document with everything the stages found
//	GET  /v1/documents/{id}/outputs/{name}
//	POST /v1/documents/{id}/feedback/{item}   {"action": "accept"|"reject", "comment"}
//	POST /v1/documents/{id}/corrections       {"field": "category"|NAME, "value"}
//	GET  /v1/documents/{id}/chat              the questions and answers kept with the document
//	POST /v1/documents/{id}/chat              {"question", "language"}: the answer (NDJSON stream on Accept: application/x-ndjson)
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/stages/analyze/chat"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
)

// DefaultTenant owns documents uploaded without authentication.
const DefaultTenant = "default"

// Ops serves what orchestrators and Prometheus probe on every process:
// /healthz (alive), /readyz (every dependency reachable) and /metrics.
// The API serves it too; a worker without the API serves it alone.
type Ops struct {
	Metrics http.Handler // /metrics; nil disables it
	// Ready checks each dependency for /readyz; a nil map means always ready.
	Ready map[string]func(context.Context) error
	// Profile adds Go's profiler under /debug/pprof/, for finding where
	// a busy process spends its time (go tool pprof URL/debug/pprof/profile).
	Profile bool
}

// Register adds the ops routes to mux.
func (o Ops) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", o.ready)
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Profile {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

// Handler serves the ops routes alone.
func (o Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	o.Register(mux)
	return mux
}

// Server serves the API.
type Server struct {
	Ingest *ingest.Ingester
	Store  *persist.Store
	Blobs  blob.Store
	Ops    Ops
	// Auth authenticates and rate-limits /v1; nil: every request is the
	// default tenant's, unlimited (tests, loopback).
	Auth *Auth
	// Chat answers questions about a document; nil: the chat endpoints
	// answer 503.
	Chat chat.Answerer
	Log  *slog.Logger
}

// Handler routes the API. /healthz, /readyz and /metrics stay open;
// everything under /v1 goes through Auth.
func (s *Server) Handler() http.Handler {
	v1 := http.NewServeMux()
	v1.HandleFunc("POST /v1/documents", s.upload)
	v1.HandleFunc("GET /v1/documents", s.list)
	v1.HandleFunc("GET /v1/documents/{id}", s.document)
	v1.HandleFunc("GET /v1/documents/{id}/outputs/{name}", s.output)
	v1.HandleFunc("POST /v1/documents/{id}/feedback/{item}", s.decide)
	v1.HandleFunc("POST /v1/documents/{id}/corrections", s.correct)
	v1.HandleFunc("GET /v1/documents/{id}/chat", s.chatHistory)
	v1.HandleFunc("POST /v1/documents/{id}/chat", s.ask)
	mux := http.NewServeMux()
	if s.Auth != nil {
		mux.Handle("/v1/", s.Auth.middleware(v1))
	} else {
		mux.Handle("/v1/", v1)
	}
	s.Ops.Register(mux)
	return mux
}

// UploadResponse is the 202 body of POST /v1/documents.
type UploadResponse struct {
	ID        string `json:"id"`
	Filename  string `json:"filename"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	StatusURL string `json:"status_url"`
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	// Leave room for the multipart envelope around a file of MaxBytes;
	// ingest enforces the exact file limit itself while streaming.
	r.Body = http.MaxBytesReader(w, r.Body, s.Ingest.MaxBytes+1<<20)
	u, err := ReadUpload(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := s.Receive(r.Context(), tenantOf(r), r.Header.Get("Idempotency-Key"), u)
	var ue *UploadError
	if errors.As(err, &ue) {
		if ue.RetryAfter != "" {
			w.Header().Set("Retry-After", ue.RetryAfter)
		}
		writeError(w, ue.Status, ue.Err.Error())
		return
	}
	w.Header().Set("Location", resp.StatusURL)
	writeJSON(w, http.StatusAccepted, resp)
}

// UploadError is why Receive refused or failed an upload, with the HTTP
// status that says so.
type UploadError struct {
	Status     int
	RetryAfter string // seconds, for 409 and 503
	Err        error
}

func (e *UploadError) Error() string { return e.Err.Error() }
func (e *UploadError) Unwrap() error { return e.Err }

// Receive ingests an upload of tenant exactly as POST /v1/documents does
// (the reviewer console's upload form comes through here too): it
// streams the file to the blob store and returns once Kafka has
// acknowledged its DocumentReceived event. The same idemKey (when not
// "") of the same tenant returns the same document instead of a second
// one. Every error is an *UploadError.
func (s *Server) Receive(ctx context.Context, tenant, idemKey string, u Upload) (UploadResponse, error) {
	if idemKey != "" && s.Store != nil {
		idem := idempotency{s.Store.Pool()}
		doc, err := idem.claim(ctx, tenant, idemKey)
		switch {
		case errors.Is(err, errKeyInFlight):
			return UploadResponse{}, &UploadError{Status: http.StatusConflict, RetryAfter: "1", Err: err}
		case err != nil:
			s.Log.Error("idempotency key", "err", err)
			return UploadResponse{}, &UploadError{Status: http.StatusServiceUnavailable, Err: errors.New("could not check the Idempotency-Key; retry")}
		case doc != "":
			_, _ = io.Copy(io.Discard, u.Body)
			return UploadResponse{ID: doc, StatusURL: "/v1/documents/" + doc}, nil
		}
	}
	ev, err := s.Ingest.Ingest(ctx, ingest.Upload{Tenant: tenant, Filename: u.Filename, Body: u.Body, Password: u.Password})
	if idemKey != "" && s.Store != nil {
		// Settle the claim even if the client went away meanwhile.
		ctx, idem := context.WithoutCancel(ctx), idempotency{s.Store.Pool()}
		if err != nil {
			idem.release(ctx, tenant, idemKey)
		} else if derr := idem.done(ctx, tenant, idemKey, ev.Document.ID); derr != nil {
			s.Log.Error("record idempotency key", "document", ev.Document.ID, "err", derr)
		}
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, ingest.ErrTooLarge), errors.As(err, &tooLarge):
			return UploadResponse{}, &UploadError{Status: http.StatusRequestEntityTooLarge, Err: err}
		case errors.Is(err, ingest.ErrUnsupportedType):
			return UploadResponse{}, &UploadError{Status: http.StatusUnsupportedMediaType, Err: err}
		case pipeline.IsPermanent(err):
			return UploadResponse{}, &UploadError{Status: http.StatusBadRequest, Err: err}
		default:
			s.Log.Error("upload failed", "filename", u.Filename, "err", err)
			return UploadResponse{}, &UploadError{Status: http.StatusServiceUnavailable, Err: errors.New("upload could not be stored or announced; retry")}
		}
	}
	s.Log.Info("document received", "document", ev.Document.ID, "filename", ev.Document.Filename, "bytes", ev.Document.SizeBytes)
	return UploadResponse{
		ID: ev.Document.ID, Filename: ev.Document.Filename, SHA256: ev.Document.SHA256,
		SizeBytes: ev.Document.SizeBytes, StatusURL: "/v1/documents/" + ev.Document.ID,
	}, nil
}

// maxPasswordBytes bounds the password form field, which is read whole;
// other small fields before the file (Upload.Fields) have the same bound.
const maxPasswordBytes = 1 << 10

// maxExtraFields bounds the number of small fields before the file.
const maxExtraFields = 8

// Upload is a file arriving over HTTP, not yet read: Body streams it.
type Upload struct {
	Filename string
	Password string // opens an encrypted PDF; passed on, never logged
	Body     io.Reader
	// Fields are the form's other fields before the file part, such as
	// the console's CSRF token.
	Fields map[string]string
}

// ReadUpload finds the file in a multipart form (field "file") or takes
// the raw body with ?filename=. It streams: the multipart reader hands
// the part over without buffering the file. The password that opens an
// encrypted PDF comes as ?password= or as a "password" field before the
// file part (a field after it could only be read by buffering the file).
func ReadUpload(r *http.Request) (Upload, error) {
	u := Upload{Password: r.URL.Query().Get("password"), Fields: map[string]string{}}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		u.Filename = r.URL.Query().Get("filename")
		if u.Filename == "" {
			return Upload{}, errors.New("send multipart/form-data with a \"file\" field, or the raw file with ?filename=NAME")
		}
		u.Body = r.Body
		return u, nil
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return Upload{}, errors.New(`multipart form has no "file" field`)
		}
		if err != nil {
			return Upload{}, fmt.Errorf("read multipart form: %w", err)
		}
		name := part.FormName()
		if name == "file" {
			u.Filename = part.FileName()
			if u.Filename == "" {
				u.Filename = "document"
			}
			u.Body = part
			return u, nil
		}
		b, err := io.ReadAll(io.LimitReader(part, maxPasswordBytes+1))
		if err != nil {
			return Upload{}, fmt.Errorf("read multipart form: %s: %w", name, err)
		}
		if len(b) > maxPasswordBytes {
			return Upload{}, fmt.Errorf("%s longer than %d bytes", name, maxPasswordBytes)
		}
		if name == "password" {
			u.Password = string(b)
			continue
		}
		if len(u.Fields) >= maxExtraFields {
			return Upload{}, fmt.Errorf("multipart form has more than %d fields before the file", maxExtraFields)
		}
		u.Fields[name] = string(b)
	}
}

// documentJSON is a document as the API shows it: the stored view plus
// download URLs for its outputs.
type documentJSON struct {
	persist.DocumentView
	Outputs []outputJSON `json:"outputs"`
}

type outputJSON struct {
	persist.OutputView
	URL string `json:"url"`
}

func (s *Server) document(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var run int32
	if v := r.URL.Query().Get("run"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "run must be a positive number")
			return
		}
		run = int32(n)
	}
	doc, err := s.Store.DocumentRun(r.Context(), tenantOf(r), id, run)
	if errors.Is(err, persist.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no document "+id+" (or no such run)")
		return
	}
	if err != nil {
		s.Log.Error("read document", "document", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the document; retry")
		return
	}
	out := documentJSON{DocumentView: doc, Outputs: []outputJSON{}}
	for _, o := range doc.Outputs {
		out.Outputs = append(out.Outputs, outputJSON{OutputView: o, URL: "/v1/documents/" + id + "/outputs/" + o.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

// decisionRequest is the body of POST /v1/documents/{id}/feedback/{item}.
type decisionRequest struct {
	Action  string `json:"action"` // accept or reject
	Comment string `json:"comment"`
}

// decide records a reviewer's accept or reject of a feedback item; the
// decision, who made it (the API key's tenant and id) and when are kept.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	id, item := r.PathValue("id"), r.PathValue("item")
	var req decisionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {\"action\": \"accept\"|\"reject\", \"comment\": \"...\"}: "+err.Error())
		return
	}
	if req.Action != "accept" && req.Action != "reject" {
		writeError(w, http.StatusBadRequest, `action must be "accept" or "reject"`)
		return
	}
	d, err := s.Store.Decide(r.Context(), tenantOf(r), id, item, persist.DecisionView{Action: req.Action, Comment: req.Comment, Actor: actorOf(r)})
	switch {
	case errors.Is(err, persist.ErrNotFound):
		writeError(w, http.StatusNotFound, "no feedback item "+item+" on document "+id)
	case err != nil:
		s.Log.Error("record decision", "document", id, "item", item, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not record the decision; retry")
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq := persist.ListQuery{Tenant: tenantOf(r), Status: q.Get("status"), Category: q.Get("category"),
		ParentID: q.Get("parent_id"), Cursor: q.Get("cursor"), Limit: 50}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be 1..1000")
			return
		}
		lq.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since must be an RFC 3339 time")
			return
		}
		lq.Since = t
	}
	docs, next, err := s.Store.ListDocuments(r.Context(), lq)
	if err != nil {
		if pipeline.IsPermanent(err) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.Log.Error("list documents", "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not list documents; retry")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"documents": docs, "next_cursor": next})
}

func (s *Server) output(w http.ResponseWriter, r *http.Request) {
	s.ServeOutput(w, r, tenantOf(r), r.PathValue("id"), r.PathValue("name"))
}

// ServeOutput sends output name (form.pdf, reply.eml) of the latest run
// of document id of tenant as a download; the console's download links
// are served by it too.
func (s *Server) ServeOutput(w http.ResponseWriter, r *http.Request, tenant, id, name string) {
	doc, err := s.Store.Document(r.Context(), tenant, id)
	if errors.Is(err, persist.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no document "+id)
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "could not read the document; retry")
		return
	}
	for _, o := range doc.Outputs {
		if o.Name != name {
			continue
		}
		rc, err := s.Blobs.Get(r.Context(), o.Blob)
		if err != nil {
			s.Log.Error("open output", "document", id, "output", name, "err", err)
			writeError(w, http.StatusServiceUnavailable, "could not open the output; retry")
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", o.ContentType)
		w.Header().Set("Content-Length", strconv.FormatInt(o.SizeBytes, 10))
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": o.Name}))
		if _, err := io.Copy(w, rc); err != nil {
			s.Log.Warn("send output", "document", id, "output", name, "err", err)
		}
		return
	}
	writeError(w, http.StatusNotFound, "document "+id+" has no output "+name)
}

func (o Ops) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status, code := map[string]string{}, http.StatusOK
	for name, check := range o.Ready {
		if err := check(ctx); err != nil {
			status[name], code = err.Error(), http.StatusServiceUnavailable
		} else {
			status[name] = "ok"
		}
	}
	writeJSON(w, code, status)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
