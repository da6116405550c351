// Package console is prismflow's reviewer console: the web pages where
// brokers and reviewers watch the day's documents arrive, check what the
// pipeline found, accept or reject its feedback, correct a category or a
// field, ask questions about a document, and reprocess or redrive it.
//
// It is served by the same binary on the API's address, at /:
//
//	GET  /                          inbox: filters, text search, keyset pages, live rows
//	GET  /documents/{id}[?run=N]    one document: pages, sections, feedback, fields, chat
//	GET  /documents/{id}/pages/{n}.png?w=   a page of the original, rendered on demand
//	GET  /pipeline                  per stage figures and the dead letters
//	GET  /events                    Server-Sent Events of the tenant's documents
//	POST /upload, /documents/{id}/feedback/{item}, …/corrections, …/chat, …/reprocess, …/redrive
//	GET  /signin, POST /signin, POST /signout
//
// # Why server-rendered HTML
//
// The pages are html/template, rendered from the same persist views the
// API returns, with htmx (vendored from the npm registry under
// static/vendor) for partial updates and one small script of our own
// (static/app.js) for live rows, streamed chat answers, field
// highlighting and keyboard keys. Everything is embedded with go:embed:
// the console works offline, loads nothing from a CDN and needs no
// front-end build, so `go build` is the whole build. Every page and form
// also works without JavaScript (plain links and posts), which keeps it
// usable with the keyboard and testable with plain HTTP.
//
// # Who sees what
//
// A reviewer signs in with an API key of their tenant (httpapi.KeyStore);
// the console keeps a server-side session in PostgreSQL (migration 014)
// and gives the browser only a random token in an HttpOnly, SameSite=Strict
// cookie (Secure over TLS). Every query is scoped to the session's
// tenant, and another tenant's document is a 404 exactly like a missing
// one, as in the API. Every state-changing request is a POST carrying the
// session's CSRF token (a hidden form field, or the X-CSRF-Token header
// htmx and app.js send). When the API needs no key (httpapi.AuthRequired:
// a loopback-only embedded run) the console opens straight away as the
// default tenant.
//
// Uploads, downloads and chat go through the API's own code
// (httpapi.Server.Receive, ServeOutput, Ask), so the console cannot
// drift from what the API does.
package console
