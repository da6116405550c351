package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"prismflow/stages/persist"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// pageNames are the full pages; every other template file holds
// fragments shared by them (layout.html, parts.html).
var pageNames = []string{"signin", "inbox", "document", "pipeline", "error"}

// views holds the parsed templates per interface language: the "t"
// function is bound to the language once, at start, so a template or a
// fragment rendered alone translates without carrying the language.
type views struct {
	pages map[string]map[string]*template.Template // lang → page → template
	parts map[string]*template.Template            // lang → fragments
}

func (v *views) page(lang, name string) *template.Template { return v.pages[lang][name] }

func (v *views) fragments(lang string) *template.Template { return v.parts[lang] }

func loadViews() (*views, error) {
	v := &views{pages: map[string]map[string]*template.Template{}, parts: map[string]*template.Template{}}
	for lang := range messages {
		base, err := template.New("").Funcs(funcs(lang)).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html")
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		v.parts[lang] = base
		v.pages[lang] = map[string]*template.Template{}
		for _, name := range pageNames {
			t, err := base.Clone()
			if err != nil {
				return nil, fmt.Errorf("console: templates: %w", err)
			}
			if t, err = t.ParseFS(templateFiles, "templates/"+name+".html"); err != nil {
				return nil, fmt.Errorf("console: template %s: %w", name, err)
			}
			v.pages[lang][name] = t
		}
	}
	return v, nil
}

// funcs are the templates' helpers in lang.
func funcs(lang string) template.FuncMap {
	return template.FuncMap{
		"t": func(key string, args ...any) string { return translate(lang, key, args...) },
		// status and source name a value that may be unknown to the
		// tables (a newer pipeline's): then it is shown as it is.
		"status": func(s string) string { return known(lang, "status."+s, s) },
		"source": func(s string) string { return known(lang, "source."+s, s) },
		"age":    func(t time.Time) string { return age(lang, time.Now(), t) },
		"when":   func(t time.Time) string { return when(lang, t) },
		"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"pct":    func(f float64) string { return fmt.Sprintf("%.0f%%", math.Round(f*100)) },
		"pctnum": func(f float64) float64 { return math.Round(f * 100) },
		"cited":  cited,
		// ordinal counts sections from 1 for people (indexes start at 0).
		"ordinal": func(i int32) int32 { return i + 1 },
		// item pairs a page with one of its parts, for a fragment that
		// needs both (the CSRF token and a feedback item).
		"item": func(p *page, x any) itemData { return itemData{P: p, X: x} },
		// other and langQuery make the language switch: the same page
		// in the other language.
		"other": func(l string) string {
			if l == "en" {
				return "it"
			}
			return "en"
		},
		// A query-only URL: the same page, whatever its path.
		"langURL": func(rawQuery, l string) template.URL {
			q, _ := url.ParseQuery(rawQuery)
			q.Set("lang", l)
			return template.URL("?" + q.Encode())
		},
	}
}

type itemData struct {
	P *page
	X any
}

// known is the text of key in lang, or fallback when there is none.
func known(lang, key, fallback string) string {
	if _, ok := messages[lang][key]; ok {
		return translate(lang, key)
	}
	return fallback
}

// when formats a time for reviewers, in the server's local time zone.
func when(lang string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if lang == "en" {
		return t.Local().Format("2 Jan 2006 15:04")
	}
	return t.Local().Format("02/01/2006 15:04")
}

// assets serves the embedded static files. URLs carry a hash of the
// content (?v=), so browsers may cache them for a year and still get a
// new version at once.
type assets struct {
	files   fs.FS
	version map[string]string // name → content hash
}

func newAssets() (*assets, error) {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	a := &assets{files: sub, version: map[string]string{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a.version[p] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	return a, nil
}

// URL returns the versioned URL of a static file.
func (a *assets) URL(name string) string { return "/static/" + name + "?v=" + a.version[name] }

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/static/")
	b, err := fs.ReadFile(a.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	if r.URL.Query().Get("v") == a.version[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("ETag", `"`+a.version[name]+`"`)
	if match := r.Header.Get("If-None-Match"); match == `"`+a.version[name]+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(b)
}

// citeMarker is a citation marker in an answer's text: [S3] or [S3, S5],
// naming sections by index (the chat package's convention).
var citeMarker = regexp.MustCompile(`\[(S\d+(?:\s*[,;]\s*S\d+)*)\]`)

// cited is an answer's text as HTML, each marker naming a section the
// answer cites turned into a link to it (§ counted from 1, as the page
// numbers its sections); markers naming no cited section are dropped.
func cited(m persist.ChatMessage) template.HTML {
	sections := map[string]bool{}
	for _, c := range m.Citations {
		sections[strconv.Itoa(int(c.Section))] = true
	}
	var b strings.Builder
	last := 0
	for _, loc := range citeMarker.FindAllStringSubmatchIndex(m.Text, -1) {
		b.WriteString(template.HTMLEscapeString(m.Text[last:loc[0]]))
		last = loc[1]
		var links []string
		for _, ref := range strings.FieldsFunc(m.Text[loc[2]:loc[3]], func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
			n := strings.TrimPrefix(ref, "S")
			if !sections[n] {
				continue
			}
			i, _ := strconv.Atoi(n)
			links = append(links, fmt.Sprintf(`<a class="cite" href="#section-%d">§%d</a>`, i, i+1))
		}
		if len(links) > 0 {
			b.WriteString("[" + strings.Join(links, ", ") + "]")
		}
	}
	b.WriteString(template.HTMLEscapeString(m.Text[last:]))
	return template.HTML(b.String())
}
