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
	"strconv"
	"time"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
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
	body, filename, password, err := uploadBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tenant := tenantOf(r)
	// The same Idempotency-Key names the same document: a client that
	// lost the answer can send again without making a second one.
	idemKey := r.Header.Get("Idempotency-Key")
	if idemKey != "" && s.Store != nil {
		idem := idempotency{s.Store.Pool()}
		doc, err := idem.claim(r.Context(), tenant, idemKey)
		switch {
		case errors.Is(err, errKeyInFlight):
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusConflict, err.Error())
			return
		case err != nil:
			s.Log.Error("idempotency key", "err", err)
			writeError(w, http.StatusServiceUnavailable, "could not check the Idempotency-Key; retry")
			return
		case doc != "":
			_, _ = io.Copy(io.Discard, body)
			w.Header().Set("Location", "/v1/documents/"+doc)
			writeJSON(w, http.StatusAccepted, UploadResponse{ID: doc, StatusURL: "/v1/documents/" + doc})
			return
		}
	}
	ev, err := s.Ingest.Ingest(r.Context(), ingest.Upload{Tenant: tenant, Filename: filename, Body: body, Password: password})
	if idemKey != "" && s.Store != nil {
		// Settle the claim even if the client went away meanwhile.
		ctx, idem := context.WithoutCancel(r.Context()), idempotency{s.Store.Pool()}
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
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		case errors.Is(err, ingest.ErrUnsupportedType):
			writeError(w, http.StatusUnsupportedMediaType, err.Error())
		case pipeline.IsPermanent(err):
			writeError(w, http.StatusBadRequest, err.Error())
		default:
			s.Log.Error("upload failed", "filename", filename, "err", err)
			writeError(w, http.StatusServiceUnavailable, "upload could not be stored or announced; retry")
		}
		return
	}
	s.Log.Info("document received", "document", ev.Document.ID, "filename", ev.Document.Filename, "bytes", ev.Document.SizeBytes)
	w.Header().Set("Location", "/v1/documents/"+ev.Document.ID)
	writeJSON(w, http.StatusAccepted, UploadResponse{
		ID: ev.Document.ID, Filename: ev.Document.Filename, SHA256: ev.Document.SHA256,
		SizeBytes: ev.Document.SizeBytes, StatusURL: "/v1/documents/" + ev.Document.ID,
	})
}

// maxPasswordBytes bounds the password form field, which is read whole.
const maxPasswordBytes = 1 << 10

// uploadBody finds the file in a multipart form (field "file") or takes
// the raw body with ?filename=. It streams: the multipart reader hands
// the part over without buffering the file. The password that opens an
// encrypted PDF comes as ?password= or as a "password" field before the
// file part (a field after it could only be read by buffering the file).
// It is passed on, never logged.
func uploadBody(r *http.Request) (body io.Reader, filename, password string, err error) {
	password = r.URL.Query().Get("password")
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		name := r.URL.Query().Get("filename")
		if name == "" {
			return nil, "", "", errors.New("send multipart/form-data with a \"file\" field, or the raw file with ?filename=NAME")
		}
		return r.Body, name, password, nil
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, "", "", errors.New(`multipart form has no "file" field`)
		}
		if err != nil {
			return nil, "", "", fmt.Errorf("read multipart form: %w", err)
		}
		switch part.FormName() {
		case "password":
			b, err := io.ReadAll(io.LimitReader(part, maxPasswordBytes+1))
			if err != nil {
				return nil, "", "", fmt.Errorf("read multipart form: password: %w", err)
			}
			if len(b) > maxPasswordBytes {
				return nil, "", "", fmt.Errorf("password longer than %d bytes", maxPasswordBytes)
			}
			password = string(b)
		case "file":
			name := part.FileName()
			if name == "" {
				name = "document"
			}
			return part, name, password, nil
		}
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
	id, name := r.PathValue("id"), r.PathValue("name")
	doc, err := s.Store.Document(r.Context(), tenantOf(r), id)
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
