package console

import (
	"mime"
	"net/http"
	"strings"
)

// CSRF: every state-changing request is a POST that carries the
// session's token, either in the X-CSRF-Token header (htmx and app.js
// read it from <meta name=csrf-token>) or in a form's hidden "csrf"
// field. The session cookie is SameSite=Strict as well, but the token
// does not rely on browsers honouring that.

// csrfHeader is the header htmx and app.js send the token in.
const csrfHeader = "X-CSRF-Token"

// csrfOf returns the token a request sent: the header, else the "csrf"
// field of a URL-encoded form.
func csrfOf(r *http.Request) string {
	if v := r.Header.Get(csrfHeader); v != "" {
		return v
	}
	if !isForm(r) {
		return ""
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	return r.PostFormValue("csrf")
}

// maxFormBytes bounds a URL-encoded form (a comment, a correction, a
// question).
const maxFormBytes = 256 << 10

func mediaType(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return strings.ToLower(mt)
}

func isForm(r *http.Request) bool { return mediaType(r) == "application/x-www-form-urlencoded" }

func isMultipart(r *http.Request) bool { return mediaType(r) == "multipart/form-data" }
