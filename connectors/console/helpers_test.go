package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"prismflow/connectors/blob"
	"prismflow/connectors/console/pages"
	"prismflow/connectors/httpapi"
	"prismflow/pipeline/config"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
	"prismflow/stages/analyze/chat"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
)

// env is a console on a real PostgreSQL, with uploads written straight
// to the store (as the persist stage would) instead of through Kafka.
type env struct {
	srv   *httptest.Server
	store *persist.Store
	keys  *httpapi.KeyStore
	p     *persist.Persister
	blobs blob.Store

	mu        sync.Mutex
	published []events.DocumentReceived
}

func newEnv(t testing.TB, authRequired bool) *env {
	t.Helper()
	return newEnvWith(t, authRequired, nil, nil)
}

// newEnvWith is newEnv with publish also called for each upload, and
// configure changing the console before it starts.
func newEnvWith(t testing.TB, authRequired bool, publish func(context.Context, events.DocumentReceived) error, configure func(*Server)) *env {
	t.Helper()
	ctx := context.Background()
	store, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	blobs := blob.NewMemory()
	e := &env{store: store, keys: httpapi.NewKeyStore(store.Pool()), p: &persist.Persister{Store: store}, blobs: blobs}
	answerer, err := chat.Open(ctx, "rules", config.LLM{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	api := &httpapi.Server{
		Ingest: &ingest.Ingester{Blobs: blobs, MaxBytes: 1 << 20, Publish: func(ctx context.Context, ev events.DocumentReceived) error {
			e.mu.Lock()
			e.published = append(e.published, ev)
			e.mu.Unlock()
			if publish != nil {
				if err := publish(ctx, ev); err != nil {
					return err
				}
			}
			ev.Meta.Run = 1
			return e.p.Received(ctx, ev)
		}},
		Store: store, Blobs: blobs, Chat: answerer, Log: log,
	}
	renderer, err := pages.NewRenderer(blobs, t.TempDir(), 64<<20, log)
	if err != nil {
		t.Fatal(err)
	}
	c := &Server{Store: store, API: api, Keys: e.keys, AuthRequired: authRequired, Log: log, Pages: renderer,
		Categories: []string{"RC Auto", "Fabbricato", "Altro"}, Stages: []string{"extract", "split", "analyze", "classify", "render"}}
	if configure != nil {
		configure(c)
	}
	h, err := c.Handler()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/v1/", api.Handler())
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see them.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	lang string
}

func (e *env) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: e.srv.URL, lang: "it", c: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	*http.Response
	body string
	doc  *html.Node
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	if req.Header.Get("Accept-Language") == "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	r := response{Response: resp, body: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		src := r.body
		if strings.HasPrefix(strings.TrimSpace(src), "<tr") {
			// A row fragment parses only inside a table.
			src = "<table><tbody>" + src + "</tbody></table>"
		}
		if r.doc, err = html.Parse(strings.NewReader(src)); err != nil {
			b.t.Fatalf("%s %s: not HTML: %v", req.Method, req.URL, err)
		}
	}
	return r
}

func (b *browser) get(path string, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// post sends a URL-encoded form; headers come in name, value pairs.
func (b *browser) post(path string, form url.Values, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// csrf reads the page's CSRF token from its meta tag.
func (b *browser) csrf() string {
	b.t.Helper()
	r := b.get("/")
	m := find(r.doc, `meta[name=csrf-token]`)
	if len(m) != 1 || attr(m[0], "content") == "" {
		b.t.Fatalf("no csrf-token meta on /: %d %s", r.StatusCode, r.body)
	}
	return attr(m[0], "content")
}

// signIn signs the browser in with key.
func (b *browser) signIn(key string) {
	b.t.Helper()
	r := b.post("/signin", url.Values{"api_key": {key}, "next": {"/"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		b.t.Fatalf("sign in: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
}

// find returns the elements matching a small selector: tag, then any
// number of [attr] or [attr=value] (value optionally quoted).
func find(n *html.Node, sel string) []*html.Node {
	tag, rest, _ := strings.Cut(sel, "[")
	type cond struct{ key, val string }
	var conds []cond
	if rest != "" {
		for _, part := range strings.Split(strings.TrimSuffix(rest, "]"), "][") {
			k, v, hasVal := strings.Cut(part, "=")
			v = strings.Trim(v, `"'`)
			if !hasVal {
				v = "\x00"
			}
			conds = append(conds, cond{k, v})
		}
	}
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (tag == "" || n.Data == tag) {
			ok := true
			for _, c := range conds {
				v, has := attrOK(n, c.key)
				if !has || (c.val != "\x00" && v != c.val) {
					ok = false
					break
				}
			}
			if ok {
				out = append(out, n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if n != nil {
		walk(n)
	}
	return out
}

func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func attr(n *html.Node, key string) string {
	v, _ := attrOK(n, key)
	return v
}

// text is an element's text content, spaces collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// seedDocument stores a processed document of tenant through the persist
// stage's own handlers: two sections, two feedback items, two fields.
func (e *env) seedDocument(t testing.TB, tenant, id string, received time.Time) {
	t.Helper()
	ctx := context.Background()
	doc := events.Document{ID: id, Tenant: tenant, Filename: id + ".pdf", ContentType: "application/pdf", SizeBytes: 1000, Blob: "sha256/" + id, Source: "upload"}
	meta := func(stage string) events.Meta { return events.Meta{Stage: stage, Run: 1, ProducedAt: received} }
	sections := []events.Section{
		{Index: 0, Title: "Dati del contraente", Text: "Contraente: Rossi Trasporti srl, partita IVA 01234567897, sede in Milano.", PageStart: 1, PageEnd: 1},
		{Index: 1, Title: "Veicolo", Text: "Autocarro targa AB123CD, massimale 1.000.000 decorrenza 01/01/2020.", PageStart: 1, PageEnd: 1},
	}
	steps := []func() error{
		func() error {
			return e.p.Received(ctx, events.DocumentReceived{Meta: meta("ingest"), Document: doc})
		},
		func() error {
			return e.p.Extracted(ctx, events.TextExtracted{Meta: meta("extract"), Document: doc, PageCount: 1, Language: "it",
				Pages: []events.Page{{Number: 1, Text: sections[0].Text + "\n" + sections[1].Text, Method: "ocr", Confidence: 0.87}}})
		},
		func() error {
			return e.p.Split(ctx, events.SectionsSplit{Meta: meta("split"), Document: doc, Sections: sections})
		},
		func() error {
			return e.p.Analyzed(ctx, events.SectionsAnalyzed{Meta: meta("analyze"), Document: doc, Sections: sections, Provider: "rules",
				Feedback: []events.FeedbackItem{
					{ID: id + "-a", SectionIndex: 1, Type: "amount_without_currency", Severity: events.SeverityMedium, Message: "Importo senza valuta", Quote: "1.000.000"},
					{ID: id + "-b", SectionIndex: 1, Type: "date_in_past", Severity: events.SeverityHigh, Message: "Data passata", Quote: "01/01/2020"},
				}})
		},
		func() error {
			return e.p.Classified(ctx, events.DocumentClassified{Meta: meta("classify"), Document: doc, PageCount: 1,
				Category: "RC Auto", Confidence: 0.55, NeedsReview: true, Provider: "rules",
				Fields: []events.Field{
					span("partita_iva", sections[0], "01234567897"),
					span("targa", sections[1], "AB123CD"),
				}})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("seed %s: %v", id, err)
		}
	}
}

// span is a field found at value's place in section (ASCII text: bytes
// are runes).
func span(name string, s events.Section, value string) events.Field {
	i := int32(strings.Index(s.Text, value))
	return events.Field{Name: name, Value: value, Page: s.PageStart, SectionIndex: s.Index, Start: i, End: i + int32(len(value))}
}

// receivedEvent is a document that has only just arrived.
func receivedEvent(tenant, id string, at time.Time) events.DocumentReceived {
	return events.DocumentReceived{Meta: events.Meta{Stage: "ingest", Run: 1, ProducedAt: at},
		Document: events.Document{ID: id, Tenant: tenant, Filename: id + ".pdf", ContentType: "application/pdf", Blob: "sha256/" + id, Source: "upload"}}
}
