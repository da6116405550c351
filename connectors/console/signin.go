package console

import (
	"errors"
	"net/http"
	"strings"

	"prismflow/connectors/httpapi"
)

type signinData struct {
	Next  string
	Error string
}

func (h *handler) signinPage(w http.ResponseWriter, r *http.Request, rq *request) {
	d := signinData{Next: safeNext(r.URL.Query().Get("next"))}
	h.render(w, r, http.StatusOK, "signin", h.newPage(r, rq, translate(rq.Lang, "signin.title"), d))
}

// signin trades an API key of the tenant for a session. The sign-in form
// carries no CSRF token (there is no session yet); a forged sign-in
// could only sign the victim in as the forger, and SameSite=Strict on
// the new cookie plus the key being secret make that useless.
func (h *handler) signin(w http.ResponseWriter, r *http.Request, rq *request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	next := safeNext(r.PostFormValue("next"))
	if h.Keys == nil {
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return
	}
	tenant, id, err := h.Keys.Lookup(r.Context(), key)
	if errors.Is(err, httpapi.ErrUnknownKey) || key == "" {
		d := signinData{Next: next, Error: translate(rq.Lang, "signin.invalid")}
		h.render(w, r, http.StatusUnauthorized, "signin", h.newPage(r, rq, translate(rq.Lang, "signin.title"), d))
		return
	}
	if err != nil {
		h.Log.Error("console: sign in", "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return
	}
	// A sign-in replaces the browser's earlier session, whoever it was.
	if c, err := r.Cookie(sessionCookie); err == nil {
		_ = h.sessions.end(r.Context(), c.Value)
	}
	token, sess, err := h.sessions.create(r.Context(), tenant, tenant+"/key:"+id, id)
	if err != nil {
		h.Log.Error("console: sign in", "err", err)
		h.fail(w, r, rq, http.StatusServiceUnavailable, "")
		return
	}
	setCookie(w, r, token, sess.Expires)
	h.Log.Info("console sign-in", "tenant", tenant, "key", id)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *handler) signout(w http.ResponseWriter, r *http.Request, rq *request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := h.sessions.end(r.Context(), c.Value); err != nil {
			h.Log.Error("console: sign out", "err", err)
			h.fail(w, r, rq, http.StatusServiceUnavailable, "")
			return
		}
	}
	clearCookie(w, r)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in destination on this site: a path, never
// a URL to elsewhere ("//host", "/\host").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
