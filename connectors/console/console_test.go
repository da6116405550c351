package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"prismflow/stages/persist"
)

func TestSignInAndOut(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	key, err := e.keys.Create(ctx, "acme", "reviewer")
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)

	r := b.get("/documents/x?run=1")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?next="+url.QueryEscape("/documents/x?run=1") {
		t.Fatalf("signed out GET: %d to %q, want a redirect to the sign-in page", r.StatusCode, r.Header.Get("Location"))
	}
	r = b.get("/signin")
	if len(find(r.doc, `form[data-testid=signin-form]`)) != 1 || len(find(r.doc, `input[name=api_key]`)) != 1 ||
		len(find(r.doc, `button[data-testid=signin-submit]`)) != 1 {
		t.Fatalf("sign-in page lacks its form:\n%s", r.body)
	}
	r = b.post("/signin", url.Values{"api_key": {"pf_wrong"}})
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "Chiave API sconosciuta") {
		t.Fatalf("wrong key: %d\n%s", r.StatusCode, r.body)
	}

	r = b.post("/signin", url.Values{"api_key": {key}, "next": {"//evil.example/"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("sign in: %d to %q, want / (never another site)", r.StatusCode, r.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", cookie)
	}
	var stored int
	if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM console_sessions WHERE hash = $1 AND tenant = 'acme'`,
		tokenHash(cookie.Value)).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("session rows with the token's hash: %d, %v", stored, err)
	}
	r = b.get("/")
	if r.StatusCode != http.StatusOK || len(find(r.doc, `table[data-testid=inbox]`)) != 1 || !strings.Contains(r.body, "acme") {
		t.Fatalf("inbox after sign-in: %d\n%s", r.StatusCode, r.body)
	}
	if len(find(r.doc, `button[data-testid=signout]`)) != 1 {
		t.Fatal("no sign-out button")
	}

	if r := b.post("/signout", nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF token: %d, want 403", r.StatusCode)
	}
	r = b.post("/signout", url.Values{"csrf": {b.csrf()}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
		t.Fatalf("sign out: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := b.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET / after sign-out: %d, want a redirect", r.StatusCode)
	}
	// The old token is dead even if replayed.
	old := e.browser(t)
	u, _ := url.Parse(e.srv.URL)
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: cookie.Value}})
	if r := old.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("replayed token after sign-out: %d, want a redirect", r.StatusCode)
	}

	// Revoking the key ends its sessions.
	b.signIn(key)
	if _, err := e.store.Pool().Exec(ctx, `UPDATE api_keys SET revoked_at = now()`); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET / after the key was revoked: %d, want a redirect", r.StatusCode)
	}
	// A script (htmx) is told to sign in again with a 401.
	if r := b.get("/inbox/rows/x", "HX-Request", "true"); r.StatusCode != http.StatusUnauthorized || r.Header.Get("HX-Redirect") != "/signin" {
		t.Fatalf("htmx request without session: %d %q", r.StatusCode, r.Header.Get("HX-Redirect"))
	}
}

func TestAuthOffOpensAsDefaultTenant(t *testing.T) {
	e := newEnv(t, false)
	e.seedDocument(t, "default", "doc-default", time.Now())
	e.seedDocument(t, "acme", "doc-acme", time.Now())
	b := e.browser(t)
	r := b.get("/")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d", r.StatusCode)
	}
	rows := find(r.doc, `tr[data-doc-id]`)
	if len(rows) != 1 || attr(rows[0], "data-doc-id") != "doc-default" {
		t.Fatalf("rows %d, want only the default tenant's document", len(rows))
	}
	if len(find(r.doc, `button[data-testid=signout]`)) != 0 {
		t.Error("a sign-out button without a sign-in")
	}
	// The anonymous session is kept: the next page has the same token.
	if first, again := b.csrf(), b.csrf(); first != again {
		t.Error("a new session on every request")
	}
}

func TestCSRFIsRequiredOnEveryPost(t *testing.T) {
	e := newEnv(t, false)
	e.seedDocument(t, "default", "doc-1", time.Now())
	b := e.browser(t)
	token := b.csrf()
	item := "/documents/doc-1/feedback/doc-1-a"
	for _, tt := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{"action": {"accept"}}, nil},
		{"wrong field", url.Values{"action": {"accept"}, "csrf": {token + "x"}}, nil},
		{"wrong header", url.Values{"action": {"accept"}}, []string{"X-CSRF-Token", "nope"}},
	} {
		if r := b.post(item, tt.form, tt.headers...); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tt.name, r.StatusCode)
		}
	}
	// Another browser's token does not work in this one.
	other := e.browser(t)
	if r := b.post(item, url.Values{"action": {"accept"}, "csrf": {other.csrf()}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", r.StatusCode)
	}
	doc, err := e.store.Document(context.Background(), "default", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range allFeedback(doc) {
		if f.Decision != nil {
			t.Fatalf("a refused POST stored a decision: %+v", f.Decision)
		}
	}
	// A multipart post to anything but the upload is refused too.
	body, ct := multipartForm(t, map[string]string{"action": "accept"}, "", nil)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+item, body)
	req.Header.Set("Content-Type", ct)
	if r := b.do(req); r.StatusCode != http.StatusForbidden {
		t.Errorf("multipart decision without token: %d, want 403", r.StatusCode)
	}
	// The upload without a token publishes nothing.
	body, ct = multipartForm(t, nil, "note.txt", []byte("hello"))
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
	req.Header.Set("Content-Type", ct)
	if r := b.do(req); r.StatusCode != http.StatusForbidden || len(e.published) != 0 {
		t.Errorf("upload without token: %d, %d published; want 403, none", r.StatusCode, len(e.published))
	}
	if r := b.post(item, url.Values{"action": {"accept"}}, "X-CSRF-Token", token); r.StatusCode != http.StatusSeeOther {
		t.Errorf("with the header token: %d, want 303", r.StatusCode)
	}
}

// multipartForm is fields (in order csrf, password, then the rest), then
// a file part when filename is set.
func multipartForm(t *testing.T, fields map[string]string, filename string, file []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := mw.WriteField(k, fields[k]); err != nil {
			t.Fatal(err)
		}
	}
	if filename != "" {
		w, err := mw.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(file)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestUpload(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser(t)
	token := b.csrf()

	// With htmx: the new row, to go at the top of the inbox.
	body, ct := multipartForm(t, map[string]string{"csrf": token}, "richiesta.txt", []byte("Richiesta di preventivo RC auto"))
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("HX-Request", "true")
	r := b.do(req)
	rows := find(r.doc, `tr[data-doc-id][data-status=processing]`)
	if r.StatusCode != http.StatusOK || len(rows) != 1 || len(e.published) != 1 {
		t.Fatalf("htmx upload: %d, %d rows, %d published\n%s", r.StatusCode, len(rows), len(e.published), r.body)
	}
	id := attr(rows[0], "data-doc-id")
	if ev := e.published[0]; ev.Document.ID != id || ev.Document.Tenant != "default" || ev.Document.Filename != "richiesta.txt" {
		t.Fatalf("published %+v for row %s", ev.Document, id)
	}
	// The row the live update fetches is the stored one.
	if r := b.get("/inbox/rows/"+id, "HX-Request", "true"); r.StatusCode != http.StatusOK || len(find(r.doc, `tr[data-doc-id=`+id+`]`)) != 1 {
		t.Fatalf("row fragment: %d\n%s", r.StatusCode, r.body)
	}

	// Without JavaScript: to the new document's page; the password goes
	// with the file.
	body, ct = multipartForm(t, map[string]string{"csrf": token, "password": "segreta"}, "altra.txt", []byte("Altro documento"))
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
	req.Header.Set("Content-Type", ct)
	r = b.do(req)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/documents/") || e.published[1].Password != "segreta" {
		t.Fatalf("form upload: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}

	// The API's checks apply: a GIF is refused by its bytes.
	body, ct = multipartForm(t, map[string]string{"csrf": token}, "a.gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("HX-Request", "true")
	if r := b.do(req); r.StatusCode != http.StatusUnsupportedMediaType || len(e.published) != 2 {
		t.Fatalf("GIF upload: %d, %d published", r.StatusCode, len(e.published))
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	acme, _ := e.keys.Create(ctx, "acme", "")
	e.seedDocument(t, "acme", "doc-acme", time.Now())
	e.seedDocument(t, "globex", "doc-globex", time.Now())
	b := e.browser(t)
	b.signIn(acme)
	token := b.csrf()

	r := b.get("/")
	if ids := rowIDs(r); !slices.Equal(ids, []string{"doc-acme"}) {
		t.Fatalf("inbox rows %v, want only acme's", ids)
	}
	if r := b.get("/documents/doc-acme"); r.StatusCode != http.StatusOK {
		t.Fatalf("own document: %d", r.StatusCode)
	}
	for _, tt := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/documents/doc-globex", nil},
		{"GET", "/documents/doc-globex?run=1", nil},
		{"GET", "/documents/doc-globex/pages/1.png?w=400", nil},
		{"GET", "/documents/doc-globex/outputs/form.pdf", nil},
		{"POST", "/documents/doc-globex/feedback/doc-globex-a", url.Values{"action": {"accept"}, "csrf": {token}}},
		{"POST", "/documents/doc-globex/corrections", url.Values{"field": {"targa"}, "value": {"ZZ999ZZ"}, "csrf": {token}}},
		{"POST", "/documents/doc-globex/chat", url.Values{"question": {"targa?"}, "csrf": {token}}},
	} {
		var r response
		if tt.method == "GET" {
			r = b.get(tt.path)
		} else {
			r = b.post(tt.path, tt.form)
		}
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", tt.method, tt.path, r.StatusCode)
		}
	}
	// The live row of a document not (yet) stored, or another tenant's,
	// is empty alike.
	for _, id := range []string{"doc-globex", "doc-nowhere"} {
		if r := b.get("/inbox/rows/"+id, "HX-Request", "true"); r.StatusCode != http.StatusNoContent || r.body != "" {
			t.Errorf("row of %s: %d %q, want an empty 204", id, r.StatusCode, r.body)
		}
	}
	doc, err := e.store.Document(ctx, "", "doc-globex")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Corrections) != 0 || allFeedback(doc)[0].Decision != nil {
		t.Fatal("another tenant's document was changed")
	}
	if msgs, _ := e.store.ChatHistory(ctx, "", "doc-globex"); len(msgs) != 0 {
		t.Fatal("a question was kept with another tenant's document")
	}
}

func rowIDs(r response) []string {
	var ids []string
	for _, tr := range find(r.doc, `tr[data-doc-id]`) {
		ids = append(ids, attr(tr, "data-doc-id"))
	}
	return ids
}

func TestInboxFiltersAndPages(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	// 120 documents a minute apart: every third classified (done), every
	// fifth failed, the rest processing.
	base := time.Date(2025, 3, 10, 12, 0, 0, 0, time.Local)
	for i := range 120 {
		id := fmt.Sprintf("doc-%03d", i)
		at := base.Add(time.Duration(i) * time.Hour)
		if i%3 == 0 {
			e.seedDocument(t, "default", id, at)
		} else {
			if err := e.p.Received(ctx, receivedEvent("default", id, at)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.store.Pool().Exec(ctx, `UPDATE documents SET received_at = $2 WHERE id = $1`, id, at); err != nil {
			t.Fatal(err)
		}
		status := ""
		switch {
		case i%5 == 0:
			status = "failed"
		case i%3 == 0:
			status = "done"
		}
		if status != "" {
			if _, err := e.store.Pool().Exec(ctx, `UPDATE documents SET status = $2 WHERE id = $1`, id, status); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := e.browser(t)

	// All pages, newest first, no document twice or missing.
	var all []string
	next := "/"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("more pages than documents allow")
		}
		r := b.get(next)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", next, r.StatusCode)
		}
		all = append(all, rowIDs(r)...)
		next = ""
		if a := find(r.doc, `a[data-testid=next-page]`); len(a) == 1 {
			next = attr(a[0], "href")
		}
	}
	if len(all) != 120 || all[0] != "doc-119" || all[119] != "doc-000" || len(slices.Compact(slices.Clone(all))) != 120 {
		t.Fatalf("paged through %d rows (first %s), want 120 newest first", len(all), all[0])
	}

	for _, tt := range []struct {
		query string
		want  func(i int) bool
	}{
		{"status=failed", func(i int) bool { return i%5 == 0 }},
		{"status=done&category=RC+Auto", func(i int) bool { return i%3 == 0 && i%5 != 0 }},
		{"q=doc-04", func(i int) bool { return i >= 40 && i < 50 }},
		{"q=AB123CD&status=done", func(i int) bool { return i%3 == 0 && i%5 != 0 }},
		{"since=2025-03-12&until=2025-03-12", func(i int) bool {
			d := base.Add(time.Duration(i) * time.Hour)
			return d.Year() == 2025 && d.Month() == 3 && d.Day() == 12
		}},
	} {
		var want []string
		for i := 119; i >= 0; i-- {
			if tt.want(i) {
				want = append(want, fmt.Sprintf("doc-%03d", i))
			}
		}
		var got []string
		next := "/?" + tt.query
		for next != "" {
			r := b.get(next)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", tt.query, r.StatusCode)
			}
			got = append(got, rowIDs(r)...)
			next = ""
			if a := find(r.doc, `a[data-testid=next-page]`); len(a) == 1 {
				next = attr(a[0], "href")
			}
			if tb := find(r.doc, `tbody[data-insert=true]`); len(tb) != 0 {
				t.Errorf("%s: a filtered inbox takes new documents live", tt.query)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v\nwant %v", tt.query, got, want)
		}
	}
	// The filter form keeps what was asked.
	r := b.get("/?status=failed&q=doc")
	if f := find(r.doc, `form[data-testid=filters]`); len(f) != 1 || len(find(f[0], `option[value=failed][selected]`)) != 1 ||
		len(find(f[0], `input[name=q][value=doc]`)) != 1 {
		t.Errorf("filter form does not show the filters in use")
	}
	for _, q := range []string{"status=lost", "since=yesterday", "cursor=!!"} {
		if r := b.get("/?" + q); r.StatusCode != http.StatusBadRequest || len(find(r.doc, `html[lang=it]`)) != 1 {
			t.Errorf("/?%s: %d, want a 400 page", q, r.StatusCode)
		}
	}
}

func TestDecisionsAndCorrectionsAreKept(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	key, _ := e.keys.Create(ctx, "acme", "reviewer")
	keyID := strings.TrimPrefix(mustLookupID(t, e, key), "")
	e.seedDocument(t, "acme", "doc-1", time.Now())
	b := e.browser(t)
	b.signIn(key)
	token := b.csrf()

	r := b.get("/documents/doc-1")
	for _, sel := range []string{
		`[data-testid=doc-status][data-status=processing]`, `[data-testid=page][data-page=1]`, `[data-testid=page-text]`,
		`img[data-testid=page-image]`, `[data-testid=ocr-badge]`, `section[id=section-0][data-testid=section]`, `section[id=section-1]`,
		`[data-testid=feedback-item][data-item-id=doc-1-a]`, `button[data-testid=accept]`, `button[data-testid=reject]`, `textarea[name=comment]`,
		`[data-testid=category]`, `[data-testid=needs-review]`, `form[data-testid=category-form]`, `select[name=value]`,
		`[data-testid=field][data-field=targa]`, `[data-testid=field-value]`, `button[data-testid=field-source][data-section=1]`,
		`form[data-testid=correction-form][data-field=targa]`, `form[data-testid=reprocess-form]`, `form[data-testid=chat-form]`,
		`textarea[name=question]`, `button[data-testid=chat-submit]`,
	} {
		if len(find(r.doc, sel)) == 0 && !strings.Contains(sel, "reprocess") {
			t.Errorf("document page has no %s", sel)
		}
	}
	if img := find(r.doc, `img[data-testid=page-image]`); len(img) != 1 || attr(img[0], "loading") != "lazy" ||
		!strings.HasPrefix(attr(img[0], "src"), "/documents/doc-1/pages/1.png?w=") {
		t.Errorf("page image is not lazy from the renderer's URL")
	}
	if len(find(r.doc, `form[data-testid=reprocess-form]`)) != 0 {
		t.Errorf("a reprocess form without an operator")
	}

	// Accept with htmx: the item comes back decided.
	r = b.post("/documents/doc-1/feedback/doc-1-a", url.Values{"action": {"accept"}, "comment": {"chiedere la valuta"}}, "X-CSRF-Token", token, "HX-Request", "true")
	d := find(r.doc, `[data-testid=decision][data-action=accept]`)
	if r.StatusCode != http.StatusOK || len(d) != 1 || !strings.Contains(text(d[0]), "acme/key:"+keyID) || !strings.Contains(text(d[0]), "chiedere la valuta") {
		t.Fatalf("accept: %d\n%s", r.StatusCode, r.body)
	}
	// Reject with a plain form: back to the page.
	r = b.post("/documents/doc-1/feedback/doc-1-b", url.Values{"action": {"reject"}, "csrf": {token}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/documents/doc-1#item-doc-1-b" {
		t.Fatalf("reject: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := b.post("/documents/doc-1/feedback/doc-1-b", url.Values{"action": {"maybe"}, "csrf": {token}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown action: %d, want 400", r.StatusCode)
	}
	if r := b.post("/documents/doc-1/feedback/nope", url.Values{"action": {"accept"}, "csrf": {token}}); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown item: %d, want 404", r.StatusCode)
	}

	// Correct a field with htmx, and the category with a form.
	r = b.post("/documents/doc-1/corrections", url.Values{"field": {"targa"}, "value": {"AB124CD"}}, "X-CSRF-Token", token, "HX-Request", "true")
	f := find(r.doc, `[data-testid=field][data-field=targa][data-corrected=true]`)
	if r.StatusCode != http.StatusOK || len(f) != 1 || text(find(f[0], `[data-testid=field-value]`)[0]) != "AB124CD" ||
		!strings.Contains(text(find(f[0], `[data-testid=field-original]`)[0]), "AB123CD") {
		t.Fatalf("field correction: %d\n%s", r.StatusCode, r.body)
	}
	r = b.post("/documents/doc-1/corrections", url.Values{"field": {"category"}, "value": {"Fabbricato"}, "csrf": {token}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("category correction: %d", r.StatusCode)
	}
	if r := b.post("/documents/doc-1/corrections", url.Values{"field": {"<b>"}, "value": {"x"}, "csrf": {token}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("bad field name: %d, want 400", r.StatusCode)
	}

	// Reload: all of it is kept and shown.
	r = b.get("/documents/doc-1")
	if d := find(r.doc, `[data-testid=feedback-item][data-item-id=doc-1-a]`); len(d) != 1 || len(find(d[0], `[data-testid=decision][data-action=accept]`)) != 1 {
		t.Error("accept not shown after reload")
	}
	if d := find(r.doc, `[data-testid=feedback-item][data-item-id=doc-1-b]`); len(d) != 1 || len(find(d[0], `[data-testid=decision][data-action=reject]`)) != 1 {
		t.Error("reject not shown after reload")
	}
	if f := find(r.doc, `[data-testid=field][data-field=targa][data-corrected=true]`); len(f) != 1 {
		t.Error("field correction not shown after reload")
	}
	if c := find(r.doc, `[data-testid=category]`); len(c) != 1 || !strings.Contains(text(c[0]), "Fabbricato") {
		t.Error("category correction not shown after reload")
	}
	if o := find(r.doc, `option[selected]`); len(o) == 0 || text(o[0]) != "Fabbricato" {
		t.Error("the category form does not start from the corrected category")
	}
	doc, err := e.store.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Corrections) != 2 || doc.Corrections[1].Original != "RC Auto" || doc.Corrections[1].Actor != "acme/key:"+keyID {
		t.Fatalf("stored corrections %+v", doc.Corrections)
	}
}

func mustLookupID(t *testing.T, e *env, key string) string {
	t.Helper()
	_, id, err := e.keys.Lookup(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestChatWithTheRulesAnswerer(t *testing.T) {
	e := newEnv(t, false)
	e.seedDocument(t, "default", "doc-1", time.Now())
	b := e.browser(t)
	token := b.csrf()

	// Streamed, as app.js asks.
	r := b.post("/documents/doc-1/chat", url.Values{"question": {"Qual è la targa del veicolo?"}},
		"X-CSRF-Token", token, "Accept", streamType)
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != streamType {
		t.Fatalf("chat: %d %s\n%s", r.StatusCode, r.Header.Get("Content-Type"), r.body)
	}
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	var streamed strings.Builder
	var last map[string]string
	for _, l := range lines {
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		streamed.WriteString(m["delta"])
		last = m
	}
	if len(lines) < 2 || last["grounding"] != "retrieval" || streamed.Len() == 0 {
		t.Fatalf("stream of %d lines, last %v", len(lines), last)
	}
	if !strings.Contains(last["html"], `data-testid="chat-answer"`) || !strings.Contains(last["html"], `data-done="true"`) ||
		!strings.Contains(last["html"], `href="#section-1"`) {
		t.Fatalf("answer does not cite the section with the plate:\n%s", last["html"])
	}

	// Kept with the document, shown on reload, readable through the API.
	r = b.get("/documents/doc-1")
	answers := find(r.doc, `[data-testid=chat-answer][data-done=true][data-grounding=retrieval]`)
	if len(answers) != 1 || len(find(answers[0], `a[data-testid=citation][href="#section-1"]`)) == 0 {
		t.Fatalf("chat history on the page: %d answers", len(answers))
	}
	if !strings.Contains(r.body, "Qual è la targa del veicolo?") {
		t.Error("the question is not shown")
	}
	api := b.get("/v1/documents/doc-1/chat")
	var hist struct{ Messages []persist.ChatMessage }
	if err := json.Unmarshal([]byte(api.body), &hist); err != nil || len(hist.Messages) != 2 ||
		hist.Messages[0].Actor != "anonymous" || hist.Messages[1].Grounding != "retrieval" {
		t.Fatalf("API chat history: %v %+v", err, hist.Messages)
	}

	// A plain form post answers, then shows the page.
	r = b.post("/documents/doc-1/chat", url.Values{"question": {"partita IVA"}, "csrf": {token}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("form chat: %d", r.StatusCode)
	}
	if r := b.post("/documents/doc-1/chat", url.Values{"question": {"  "}, "csrf": {token}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("empty question: %d, want 400", r.StatusCode)
	}
}

func TestLanguages(t *testing.T) {
	for k := range messages["it"] {
		if _, ok := messages["en"][k]; !ok {
			t.Errorf("message %q has no English text", k)
		}
	}
	for k := range messages["en"] {
		if _, ok := messages["it"][k]; !ok {
			t.Errorf("message %q has no Italian text", k)
		}
	}
	e := newEnv(t, false)
	b := e.browser(t)
	for _, tt := range []struct {
		accept, lang, title string
	}{
		{"", "it", "Documenti"},
		{"de-DE,de;q=0.9", "it", "Documenti"},
		{"en-GB,en;q=0.9,it;q=0.5", "en", "Documents"},
		{"it-IT,en;q=0.8", "it", "Documenti"},
	} {
		r := b.get("/", "Accept-Language", tt.accept+" ")
		if len(find(r.doc, `html[lang=`+tt.lang+`]`)) != 1 || !strings.Contains(text(find(r.doc, "h1")[0]), tt.title) {
			t.Errorf("Accept-Language %q: want lang %s with %q", tt.accept, tt.lang, tt.title)
		}
	}
	// The switch is remembered over the browser's preference.
	r := b.get("/?lang=en", "Accept-Language", "it")
	if len(find(r.doc, `html[lang=en]`)) != 1 {
		t.Fatal("?lang=en did not switch")
	}
	if sw := find(r.doc, `a[hreflang=it]`); len(sw) != 1 || attr(sw[0], "href") != "?lang=it" {
		t.Errorf("no switch back to Italian: %d links %q", len(sw), attr(sw[0], "href"))
	}
	if r := b.get("/pipeline", "Accept-Language", "it"); len(find(r.doc, `html[lang=en]`)) != 1 {
		t.Error("the chosen language was not kept")
	}
}

func TestErrorPages(t *testing.T) {
	e := newEnv(t, false)
	e.seedDocument(t, "default", "doc-1", time.Now())
	b := e.browser(t)
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/nowhere", http.StatusNotFound},
		{"/documents/missing", http.StatusNotFound},
		{"/documents/doc-1?run=7", http.StatusNotFound},
		{"/documents/doc-1?run=x", http.StatusBadRequest},
		{"/documents/doc-1/pages/x.png", http.StatusNotFound},
		{"/documents/doc-1/outputs/form.pdf", http.StatusNotFound},
		{"/static/nothing.js", http.StatusNotFound},
	} {
		r := b.get(tt.path)
		if r.StatusCode != tt.code {
			t.Errorf("GET %s: %d, want %d", tt.path, r.StatusCode, tt.code)
		}
	}
	r := b.get("/documents/missing")
	if !strings.Contains(r.body, "non trovato") || r.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("404 page:\n%s", r.body)
	}
	// The assets are embedded and cacheable.
	r = b.get("/")
	for _, s := range find(r.doc, "script[src]") {
		src := attr(s, "src")
		if a := b.get(src); a.StatusCode != http.StatusOK || !strings.Contains(a.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: %d %q", src, a.StatusCode, a.Header.Get("Cache-Control"))
		}
	}
}

func TestPageImages(t *testing.T) {
	e := newEnv(t, false)
	pdf, err := os.ReadFile("../../../shared/corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf")
	if err != nil {
		t.Fatalf("shared corpus missing: %v", err)
	}
	b := e.browser(t)
	body, ct := multipartForm(t, map[string]string{"csrf": b.csrf()}, "quattro.pdf", pdf)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
	req.Header.Set("Content-Type", ct)
	r := b.do(req)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: %d %s", r.StatusCode, r.body)
	}
	doc := r.Header.Get("Location")
	for _, width := range []int{400, 1200} {
		r := b.get(fmt.Sprintf("%s/pages/2.png?w=%d", doc, width))
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("page 2 at %d px: %d %s", width, r.StatusCode, r.body)
		}
		cfg, err := png.DecodeConfig(strings.NewReader(r.body))
		// MuPDF rounds the page's pixel box outwards: a pixel more at most.
		if err != nil || cfg.Width < width || cfg.Width > width+1 || cfg.Height <= cfg.Width {
			t.Errorf("page 2 at %d px: %v %dx%d", width, err, cfg.Width, cfg.Height)
		}
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/pages/9.png", http.StatusNotFound},
		{"/pages/0.png", http.StatusNotFound},
		{"/pages/1.png?w=wide", http.StatusBadRequest},
		{"/pages/1.jpg", http.StatusNotFound},
	} {
		if r := b.get(doc + tt.path); r.StatusCode != tt.want {
			t.Errorf("GET %s: %d, want %d", tt.path, r.StatusCode, tt.want)
		}
	}
}
