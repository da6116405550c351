package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/mail"
	"strings"
	"text/template"
	"time"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// DefaultFrom is the sender of the reply drafts when Renderer.From is empty.
const DefaultFrom = "Navigli Broker <preventivi@navigli-broker.example>"

// DefaultTaxonomy lists the categories New checks templates for when it
// is given none; the last one is the fallback.
func DefaultTaxonomy() []string {
	return []string{"Flotta Auto", "RC Professionale", "Fabbricato", "Rischi Tecnologici", "Altro"}
}

//go:embed templates/*.tmpl forms/*.pdf
var embedded embed.FS

// Output names and content types.
const (
	FormName     = "form.pdf"
	ReplyName    = "reply.eml"
	FormType     = "application/pdf"
	ReplyType    = "message/rfc822"
	templateGlob = "*.tmpl"
)

// Renderer writes the form and the reply draft of a classified document.
// Build it with New, NewWithTemplates or NewWithOptions.
type Renderer struct {
	Blobs blob.Store
	// From is the sender address of the reply drafts; default DefaultFrom.
	From string
	// Now dates the drafts and forms; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default.
	Logger *slog.Logger

	tmpl     *template.Template
	forms    map[string]formTemplate // by category
	taxonomy []string
}

// Options are what a deployment may change about the outputs.
type Options struct {
	// From is the sender of the reply drafts; empty: DefaultFrom.
	From string
	// Taxonomy lists the categories, the fallback last; nil:
	// DefaultTaxonomy.
	Taxonomy []string
	// Templates holds the reply templates, <category>.tmpl; nil: the
	// embedded Italian ones.
	Templates fs.FS
	// Forms holds the AcroForm templates, <category>.pdf; nil: the
	// embedded ones (built from forms/src by go generate).
	Forms fs.FS
}

// New returns a Renderer with the embedded templates and forms for
// DefaultTaxonomy, sending drafts from from (empty: DefaultFrom).
func New(blobs blob.Store, from string) (*Renderer, error) {
	return NewWithOptions(blobs, Options{From: from})
}

// NewWithTemplates is NewWithOptions with the embedded forms.
func NewWithTemplates(blobs blob.Store, from string, taxonomy []string, templates fs.FS) (*Renderer, error) {
	return NewWithOptions(blobs, Options{From: from, Taxonomy: taxonomy, Templates: templates})
}

// NewWithOptions parses the reply templates and loads the form templates,
// and checks that every category of the taxonomy has both, named after
// the category: "Flotta Auto" → flotta_auto.tmpl and flotta_auto.pdf. A
// form template must be a valid PDF with AcroForm text fields. A broker
// with their own taxonomy passes it here with their templates and forms.
func NewWithOptions(blobs blob.Store, o Options) (*Renderer, error) {
	if blobs == nil {
		return nil, errors.New("render: no blob store")
	}
	from := o.From
	if from == "" {
		from = DefaultFrom
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("render: sender address %q: %w", from, err)
	}
	taxonomy := o.Taxonomy
	if len(taxonomy) == 0 {
		taxonomy = DefaultTaxonomy()
	}
	templates, forms := o.Templates, o.Forms
	if templates == nil {
		sub, err := fs.Sub(embedded, "templates")
		if err != nil {
			return nil, fmt.Errorf("render: embedded templates: %w", err)
		}
		templates = sub
	}
	if forms == nil {
		sub, err := fs.Sub(embedded, "forms")
		if err != nil {
			return nil, fmt.Errorf("render: embedded forms: %w", err)
		}
		forms = sub
	}
	t, err := template.New("reply").Funcs(template.FuncMap{"inc": func(i int) int { return i + 1 }}).ParseFS(templates, templateGlob)
	if err != nil {
		return nil, fmt.Errorf("render: parse templates: %w", err)
	}
	var missing []string
	for _, c := range taxonomy {
		if t.Lookup(TemplateName(c)) == nil {
			missing = append(missing, fmt.Sprintf("%q (%s)", c, TemplateName(c)))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("render: no reply template for categories %s", strings.Join(missing, ", "))
	}
	ft, err := loadForms(forms, taxonomy)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return &Renderer{Blobs: blobs, From: from, tmpl: t, forms: ft, taxonomy: taxonomy}, nil
}

// TemplateName is the reply template file of a category: lowercase,
// words joined by underscores, ".tmpl".
func TemplateName(category string) string { return baseName(category) + ".tmpl" }

// FormTemplateName is the form template file of a category:
// "Flotta Auto" → flotta_auto.pdf.
func FormTemplateName(category string) string { return baseName(category) + ".pdf" }

func baseName(category string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(strings.ToLower(category), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	}) {
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		b.WriteString(w)
	}
	return b.String()
}

// Keys returns the blob keys of a document's outputs for a run (0 counts
// as run 1): deterministic, so a replay overwrites.
func Keys(docID string, run int32) (form, reply string) {
	if run <= 0 {
		run = 1
	}
	prefix := fmt.Sprintf("outputs/%s/run-%d/", docID, run)
	return prefix + FormName, prefix + ReplyName
}

// Handle renders in and stores its outputs.
func (r *Renderer) Handle(ctx context.Context, in events.DocumentClassified) (events.FormRendered, error) {
	if r.tmpl == nil || r.forms == nil {
		return events.FormRendered{}, errors.New("render: Renderer not built with New, NewWithTemplates or NewWithOptions")
	}
	id := in.Document.ID
	if id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." {
		return events.FormRendered{}, pipeline.Permanent(fmt.Errorf("render: unusable document id %q", id))
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	v := newView(in, t)

	pdf, err := buildForm(r.formFor(in.Category), v)
	if err != nil {
		// The form is built from templates checked at start and the
		// document's own values: a failure is a bug or bad text in the
		// input, which a retry would not change.
		return events.FormRendered{}, pipeline.Permanent(fmt.Errorf("render form of %s: %w", id, err))
	}
	eml, err := r.buildReply(in, v, t)
	if err != nil {
		return events.FormRendered{}, fmt.Errorf("render reply of %s: %w", id, err)
	}
	formKey, replyKey := Keys(id, in.Meta.Run)
	out := events.FormRendered{Document: in.Document, Category: in.Category}
	for _, o := range []struct {
		name, key, ctype string
		data             []byte
	}{
		{FormName, formKey, FormType, pdf},
		{ReplyName, replyKey, ReplyType, eml},
	} {
		if err := r.Blobs.Put(ctx, o.key, bytes.NewReader(o.data)); err != nil {
			return events.FormRendered{}, fmt.Errorf("store %s: %w", o.key, err)
		}
		sum := sha256.Sum256(o.data)
		out.Outputs = append(out.Outputs, events.Output{
			Name: o.name, Blob: o.key, ContentType: o.ctype,
			SizeBytes: int64(len(o.data)), SHA256: hex.EncodeToString(sum[:]),
		})
	}
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.DebugContext(ctx, "rendered", "document", id, "category", in.Category, "form", formKey, "reply", replyKey)
	return out, nil
}

// view is what the form and the templates show.
type view struct {
	Document    events.Document
	Category    string
	Confidence  float64
	NeedsReview bool
	Contraente  string
	Fields      []fieldView
	Points      []events.FeedbackItem // medium and high: what the client must fix
	BySeverity  []severityGroup
	Generated   time.Time
}

type fieldView struct {
	Name, Label, Value string
	Display            string // Value as an Italian reader expects it
}

// display writes dates the Italian way and lists with spaces; the form
// keeps the machine values (ISO dates) that templates are filled with.
func display(name, value string) string {
	if t, err := time.Parse("2006-01-02", value); err == nil {
		return t.Format("02/01/2006")
	}
	if name == "targhe" {
		return strings.ReplaceAll(value, ",", ", ")
	}
	if strings.HasSuffix(name, "_eur") {
		return thousands(value)
	}
	return value
}

// thousands writes an integer the Italian way, "1250000" → "1.250.000";
// anything else is returned as is.
func thousands(s string) string {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Has reports whether a field was found, for templates that ask only
// for what is missing.
func (v view) Has(name string) bool {
	for _, f := range v.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

type severityGroup struct {
	Title string
	Items []events.FeedbackItem
}

// Labels maps the field names to the Italian labels on forms and
// drafts; fields not listed are shown by name.
var labels = map[string]string{
	"contraente": "Contraente", "partita_iva": "Partita IVA", "codice_fiscale": "Codice fiscale",
	"email": "E-mail", "telefono": "Telefono", "indirizzo": "Indirizzo", "citta": "Città", "provincia": "Provincia",
	"num_veicoli": "Numero veicoli", "targhe": "Targhe", "massimale_eur": "Massimale (EUR)", "decorrenza": "Decorrenza",
	"professione": "Professione", "fatturato_eur": "Fatturato (EUR)", "valore_fabbricato_eur": "Valore fabbricato (EUR)",
	"superficie_mq": "Superficie (mq)", "anno_costruzione": "Anno di costruzione", "tipo_impianto": "Tipo impianto",
	"valore_impianto_eur": "Valore impianto (EUR)",
}

func label(name string) string {
	if l, ok := labels[name]; ok {
		return l
	}
	return name
}

func newView(in events.DocumentClassified, now time.Time) view {
	v := view{Document: in.Document, Category: in.Category, Confidence: in.Confidence, NeedsReview: in.NeedsReview, Generated: now}
	seen := map[string]bool{}
	for _, f := range in.Fields {
		if seen[f.Name] || f.Name == "" {
			continue // one AcroForm field per name: the first value wins
		}
		seen[f.Name] = true
		v.Fields = append(v.Fields, fieldView{Name: f.Name, Label: label(f.Name), Value: f.Value, Display: display(f.Name, f.Value)})
		if f.Name == "contraente" {
			v.Contraente = f.Value
		}
	}
	groups := []severityGroup{{Title: "Gravità alta"}, {Title: "Gravità media"}, {Title: "Gravità bassa"}}
	for _, it := range in.Feedback {
		switch it.Severity {
		case events.SeverityHigh:
			groups[0].Items = append(groups[0].Items, it)
			v.Points = append(v.Points, it)
		case events.SeverityMedium:
			groups[1].Items = append(groups[1].Items, it)
			v.Points = append(v.Points, it)
		default:
			groups[2].Items = append(groups[2].Items, it)
		}
	}
	for _, g := range groups {
		if len(g.Items) > 0 {
			v.BySeverity = append(v.BySeverity, g)
		}
	}
	return v
}

func (r *Renderer) buildReply(in events.DocumentClassified, v view, now time.Time) ([]byte, error) {
	name := TemplateName(in.Category)
	if r.tmpl.Lookup(name) == nil {
		// A category outside the taxonomy (an older event, a changed
		// configuration): the fallback's neutral text fits it.
		name = TemplateName(r.taxonomy[len(r.taxonomy)-1])
	}
	var body bytes.Buffer
	if err := r.tmpl.ExecuteTemplate(&body, name, v); err != nil {
		return nil, fmt.Errorf("execute %s: %w", name, err)
	}
	fromStr := r.From
	if fromStr == "" {
		fromStr = DefaultFrom
	}
	from, err := mail.ParseAddress(fromStr)
	if err != nil {
		return nil, fmt.Errorf("sender address %q: %w", fromStr, err)
	}
	subject := in.Document.Subject
	if subject == "" {
		subject = in.Document.Filename
	}
	if !strings.HasPrefix(strings.ToLower(subject), "re:") {
		subject = "Re: " + subject
	}
	var to *mail.Address
	if in.Document.Sender != "" {
		if a, err := mail.ParseAddress(in.Document.Sender); err == nil {
			to = a
		}
	}
	return writeMessage(from, to, subject, messageID(in, from), now, body.String())
}

func messageID(in events.DocumentClassified, from *mail.Address) string {
	_, domain, _ := strings.Cut(from.Address, "@")
	run := in.Meta.Run
	if run <= 0 {
		run = 1
	}
	return fmt.Sprintf("reply.%s.run-%d@%s", in.Document.ID, run, domain)
}
