package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"prismflow/connectors/console/stats"
	"prismflow/connectors/httpapi"
	"prismflow/pipeline"
	"prismflow/stages/persist"
)

// Pages renders the pages of an original document as PNG images
// (pages.Renderer).
type Pages interface {
	PNG(ctx context.Context, blobRef, password string, n, width int) ([]byte, error)
}

// Live streams one tenant's document updates to a browser as
// Server-Sent Events (live.Hub).
type Live interface {
	ServeSSE(w http.ResponseWriter, r *http.Request, tenant string)
}

// Operator sends documents through the pipeline again: a replay from a
// stage's input topic, or a redrive of dead letters (KafkaOperator).
type Operator interface {
	// Reprocess replays doc from stage's input as a new run.
	Reprocess(ctx context.Context, stage, doc string) ([]pipeline.Replayed, error)
	// DeadLetters returns every record in the dead-letter topic.
	DeadLetters(ctx context.Context) ([]pipeline.DeadLetterRecord, error)
	// Redrive sends a dead letter's original record back to its topic.
	Redrive(ctx context.Context, d pipeline.DeadLetterRecord) error
}

// Server is the reviewer console. Store and API are required; every
// other dependency is optional, and the part of the console that needs
// it says it is unavailable without it.
type Server struct {
	Store *persist.Store
	// API is the HTTP API the console sits beside: uploads, downloads
	// and chat go through its code, so a document uploaded in the
	// console is received exactly as one posted to /v1/documents.
	API *httpapi.Server
	// Keys checks the API key a reviewer signs in with.
	Keys *httpapi.KeyStore
	// AuthRequired asks for a sign-in (httpapi.AuthRequired); without
	// it the console opens straight away as the default tenant.
	AuthRequired bool
	// SessionTTL is how long a sign-in lasts; 0 = 12h.
	SessionTTL time.Duration
	// Categories are the taxonomy's, offered for category corrections
	// and the inbox filter.
	Categories []string
	// Stages are the stages a document can be reprocessed from, in
	// pipeline order.
	Stages []string

	Pages    Pages
	Live     Live
	Operator Operator
	// Stats returns the pipeline page's figures (stats.Collector's
	// Collect); nil hides them.
	Stats func(ctx context.Context) ([]stats.StageStats, error)
	Log   *slog.Logger
}

// Handler returns the console's routes, to be mounted at / beside the
// API (whose /v1, /healthz, /readyz and /metrics take precedence).
func (s *Server) Handler() (http.Handler, error) {
	if s.Store == nil || s.API == nil {
		return nil, errors.New("console: Store and API are required")
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	ttl := s.SessionTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	views, err := loadViews()
	if err != nil {
		return nil, err
	}
	assets, err := newAssets()
	if err != nil {
		return nil, err
	}
	h := &handler{Server: s, sessions: &sessions{pool: s.Store.Pool(), ttl: ttl}, views: views, assets: assets}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", assets)
	mux.HandleFunc("GET /signin", h.open(h.signinPage))
	mux.HandleFunc("POST /signin", h.open(h.signin))
	mux.HandleFunc("POST /signout", h.signedIn(h.signout))
	mux.HandleFunc("GET /{$}", h.signedIn(h.inbox))
	mux.HandleFunc("GET /inbox/rows/{id}", h.signedIn(h.inboxRow))
	mux.HandleFunc("GET /events", h.signedIn(h.events))
	mux.HandleFunc("POST /upload", h.guard(h.upload, true))
	mux.HandleFunc("GET /documents/{id}", h.signedIn(h.document))
	mux.HandleFunc("GET /documents/{id}/pages/{file}", h.signedIn(h.pageImage))
	mux.HandleFunc("GET /documents/{id}/outputs/{name}", h.signedIn(h.output))
	mux.HandleFunc("POST /documents/{id}/feedback/{item}", h.signedIn(h.decide))
	mux.HandleFunc("POST /documents/{id}/corrections", h.signedIn(h.correct))
	mux.HandleFunc("POST /documents/{id}/reprocess", h.signedIn(h.reprocess))
	mux.HandleFunc("POST /documents/{id}/redrive", h.signedIn(h.redriveDocument))
	mux.HandleFunc("POST /documents/{id}/chat", h.signedIn(h.chat))
	mux.HandleFunc("GET /pipeline", h.signedIn(h.pipeline))
	mux.HandleFunc("POST /pipeline/redrive", h.signedIn(h.redrive))
	mux.HandleFunc("/", h.open(func(w http.ResponseWriter, r *http.Request, rq *request) {
		h.fail(w, r, rq, http.StatusNotFound, "")
	}))
	return securityHeaders(mux), nil
}

// handler is a running console.
type handler struct {
	*Server
	sessions *sessions
	views    *views
	assets   *assets
}

// request is what the console knows about one request besides the
// request itself.
type request struct {
	Lang string
	// Session is the signed-in reviewer; zero on the sign-in page.
	Session Session
}

// page is the data every full page renders with.
type page struct {
	Lang     string
	Title    string
	Path     string // of the request, for the language switch
	Query    string
	CSRF     string
	Tenant   string
	SignedIn bool // with an API key (a sign-out makes sense)
	Notice   string
	Assets   *assets
	Data     any
}

// open wraps a handler that needs no session.
func (h *handler) open(f func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{Lang: chooseLang(w, r)}
		if c, err := r.Cookie(sessionCookie); err == nil {
			if sess, err := h.sessions.lookup(r.Context(), c.Value); err == nil {
				rq.Session = sess
			}
		}
		f(w, r, rq)
	}
}

// signedIn wraps a handler that needs a session: it finds the session
// (or, with authentication off, starts one as the default tenant), sends
// a browser without one to the sign-in page, and refuses a POST without
// the session's CSRF token.
func (h *handler) signedIn(f func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return h.guard(f, false)
}

// guard is signedIn; with multipartCSRF a multipart POST is let through
// for the handler to check the token itself (the upload: reading the
// form here would buffer the file), and anything else without the
// header or field is refused.
func (h *handler) guard(f func(http.ResponseWriter, *http.Request, *request), multipartCSRF bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{Lang: chooseLang(w, r)}
		sess, err := h.session(w, r)
		if errors.Is(err, errNoSession) {
			h.toSignin(w, r, rq)
			return
		}
		if err != nil {
			h.Log.Error("console session", "err", err)
			h.fail(w, r, rq, http.StatusServiceUnavailable, "")
			return
		}
		rq.Session = sess
		if r.Method == http.MethodPost && !(multipartCSRF && isMultipart(r)) && !validCSRF(sess, csrfOf(r)) {
			h.fail(w, r, rq, http.StatusForbidden, "")
			return
		}
		f(w, r, rq)
	}
}

// session returns the request's session, starting an anonymous one
// when authentication is off.
func (h *handler) session(w http.ResponseWriter, r *http.Request) (Session, error) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		sess, err := h.sessions.lookup(r.Context(), c.Value)
		if !errors.Is(err, errNoSession) {
			return sess, err
		}
	}
	if h.AuthRequired {
		return Session{}, errNoSession
	}
	token, sess, err := h.sessions.create(r.Context(), httpapi.DefaultTenant, "anonymous", "")
	if err != nil {
		return Session{}, err
	}
	setCookie(w, r, token, sess.Expires)
	return sess, nil
}

// toSignin sends a browser without a session to the sign-in page and
// back to where it was going afterwards; scripts get a 401.
func (h *handler) toSignin(w http.ResponseWriter, r *http.Request, rq *request) {
	if r.Method != http.MethodGet || r.Header.Get("HX-Request") != "" || r.URL.Path == "/events" {
		w.Header().Set("HX-Redirect", "/signin")
		http.Error(w, translate(rq.Lang, "signin.expired"), http.StatusUnauthorized)
		return
	}
	next := r.URL.RequestURI()
	http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// newPage fills in what every page shows.
func (h *handler) newPage(r *http.Request, rq *request, title string, data any) *page {
	return &page{
		Lang: rq.Lang, Title: title, Path: r.URL.Path, Query: r.URL.RawQuery, CSRF: rq.Session.CSRF,
		Tenant: rq.Session.Tenant, SignedIn: rq.Session.KeyID != "", Assets: h.assets, Data: data,
	}
}

// render executes a full page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	h.execute(w, status, h.views.page(p.Lang, name), "layout", p, "page", name)
}

// fragment executes one named part of a page, for htmx and scripts.
func (h *handler) fragment(w http.ResponseWriter, rq *request, status int, name string, data any) {
	h.execute(w, status, h.views.fragments(rq.Lang), name, data, "fragment", name)
}

// execute runs template name of t with data into a buffer first, so that
// a template error can still be answered with a 500 (kind and what name
// the page or fragment in the log), and writes it with status.
func (h *handler) execute(w http.ResponseWriter, status int, t *template.Template, name string, data any, kind, what string) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		h.Log.Error("console: render "+kind, kind, what, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with an error page (or, to htmx and scripts, its text).
// detail is shown for 400s only: other errors' details are for the log.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, rq *request, status int, detail string) {
	var msg string
	switch status {
	case http.StatusNotFound:
		msg = translate(rq.Lang, "error.404")
	case http.StatusBadRequest:
		msg = translate(rq.Lang, "error.400", detail)
	case http.StatusForbidden:
		msg = translate(rq.Lang, "error.403")
	default:
		msg = translate(rq.Lang, "error.503")
	}
	if r.Header.Get("HX-Request") != "" || wantsStream(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = fmt.Fprint(w, msg)
		return
	}
	p := h.newPage(r, rq, translate(rq.Lang, "error.title"), errorData{Status: status, Message: msg})
	h.render(w, r, status, "error", p)
}

type errorData struct {
	Status  int
	Message string
}

// storeError answers a failed store call: an unknown document (or one of
// another tenant) is a 404, bad input a 400, the rest a logged 503.
func (h *handler) storeError(w http.ResponseWriter, r *http.Request, rq *request, what string, err error) {
	switch {
	case errors.Is(err, persist.ErrNotFound):
		h.fail(w, r, rq, http.StatusNotFound, "")
	case pipeline.IsPermanent(err):
		h.fail(w, r, rq, http.StatusBadRequest, err.Error())
	default:
		h.Log.Error("console: "+what, "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
	}
}

// back answers a form posted without htmx: to the page it came from.
func back(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// securityHeaders keeps the console's pages to its own origin: scripts,
// styles and images only from it, no framing, no inline script.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "same-origin")
		hdr.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
