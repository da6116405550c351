package classify

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"prismflow/pipeline/config"
	"prismflow/schemas/events"
	"prismflow/stages/internal/itparse"
	"prismflow/stages/internal/llm"
)

//go:embed prompts/classify.tmpl prompts/classify.schema.json
var prompts embed.FS

// llmSecond is the optional second opinion: a language model asked for
// the category and the fields it sees, beside the built-in model.
type llmSecond struct {
	client llm.Completer
	prompt *llm.Prompt
	schema json.RawMessage
	log    *slog.Logger
}

// SetLLM makes c ask client for a second opinion on every document (nil:
// the built-in model only). The built-in model always runs; see Handle
// for how the two answers are combined. Call it before the first Handle:
// Handle reads the setting without a lock.
func (c *Classifier) SetLLM(client llm.Completer, log *slog.Logger) error {
	if client == nil {
		c.llm = nil
		return nil
	}
	p, err := llm.LoadPrompt(prompts, "prompts/classify.tmpl")
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	schema, err := prompts.ReadFile("prompts/classify.schema.json")
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.llm = &llmSecond{client: client, prompt: p, schema: schema, log: log}
	return nil
}

// UseLLM builds the client for provider (openai, bedrock) from the
// configuration and calls SetLLM with it; pool (may be nil) holds the
// response cache, reg (may be nil) takes the metrics, shared with the
// other stages' clients.
func (c *Classifier) UseLLM(ctx context.Context, provider string, cfg config.LLM, pool *pgxpool.Pool, reg prometheus.Registerer, log *slog.Logger) error {
	client, err := llm.Open(ctx, provider, cfg, pool, llm.NewMetrics(reg), log)
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	return c.SetLLM(client, log)
}

func (l *llmSecond) name() string { return l.client.Name() + "/" + l.client.Model() }

// llmField is one field of the model's answer.
type llmField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// llmAnswer is the model's answer (prompts/classify.schema.json).
type llmAnswer struct {
	Category   string     `json:"category"`
	Confidence *float64   `json:"confidence"`
	Fields     []llmField `json:"fields"`
}

// decodeAnswer is the answer's validation, with errors phrased for the
// model: the category must be the taxonomy's and the confidence a
// probability. Fields are not refused here: each is checked against the
// document later and dropped alone if wrong, which costs no correction.
func decodeAnswer(b []byte, taxonomy []string) (llmAnswer, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a llmAnswer
	if err := dec.Decode(&a); err != nil {
		return llmAnswer{}, fmt.Errorf("does not match the schema: %v", err)
	}
	if dec.More() {
		return llmAnswer{}, errors.New("extra data after the JSON object")
	}
	if !slices.Contains(taxonomy, a.Category) {
		return llmAnswer{}, fmt.Errorf("\"category\" must be exactly one of %q, got %q", taxonomy, a.Category)
	}
	if a.Confidence == nil || math.IsNaN(*a.Confidence) || *a.Confidence < 0 || *a.Confidence > 1 {
		return llmAnswer{}, errors.New(`"confidence" must be a number between 0 and 1`)
	}
	return a, nil
}

// secondOpinion is what the model said, or why it said nothing usable.
type secondOpinion struct {
	answer   llmAnswer
	ok       bool // answer is valid
	usage    events.LLMUsage
	provider string
}

// ask asks the model. Invalid output and an open breaker give !ok (the
// built-in result stands, marked); other errors are returned so the
// runtime retries the document rather than silently lose the second
// opinion.
func (l *llmSecond) ask(ctx context.Context, in events.SectionsAnalyzed, text string, taxonomy, self []string) (secondOpinion, error) {
	system, user, err := l.prompt.Render(map[string]any{
		"Categories": taxonomy, "Fields": llmFieldNames, "Self": strings.Join(self, ", "),
		"Filename": in.Document.Filename, "Subject": in.Document.Subject, "Sender": in.Document.Sender, "Text": text,
	})
	if err != nil {
		return secondOpinion{}, fmt.Errorf("classify: %w", err)
	}
	resp, err := l.client.Complete(ctx, llm.Request{
		PromptVersion: l.prompt.Version, System: system, User: user,
		SchemaName: "classification", Schema: l.schema,
		Validate: func(b []byte) error { _, err := decodeAnswer(b, taxonomy); return err },
	})
	usage := events.LLMUsage{InputTokens: resp.InputTokens, OutputTokens: resp.OutputTokens,
		CostUSD: resp.CostUSD, LatencyMS: resp.Latency.Milliseconds()}
	if errors.Is(err, llm.ErrInvalidOutput) || errors.Is(err, llm.ErrUnavailable) {
		l.log.Warn("classify: LLM failed, using the built-in model alone", "provider", l.name(), "document", in.Document.ID, "err", err)
		usage.FallbackSections = 1
		return secondOpinion{usage: usage, provider: l.name()}, nil
	}
	if err != nil {
		return secondOpinion{}, fmt.Errorf("classify: %w", err)
	}
	a, err := decodeAnswer([]byte(resp.Text), taxonomy)
	if err != nil { // validated already; a cache entry from an older taxonomy
		l.log.Warn("classify: cached LLM answer no longer valid, using the built-in model alone", "provider", l.name(),
			"document", in.Document.ID, "err", err)
		usage.FallbackSections = 1
		return secondOpinion{usage: usage, provider: l.name()}, nil
	}
	usage.Sections = 1
	if resp.Cached {
		usage.CachedSections = 1
	}
	return secondOpinion{answer: a, ok: true, usage: usage, provider: l.name()}, nil
}

// decide combines the built-in answer with the model's. When they agree
// the category stands with the higher of the two confidences. When they
// disagree the document always needs review, and the model's category is
// taken only if it is confident (at or above threshold) while the
// built-in model is not: a calibrated, confident built-in answer is not
// overruled by a model whose confidence is self-reported.
func decide(builtin string, builtinConf float64, llmCat string, llmConf, threshold float64) (category string, confidence float64, fromLLM, disagree bool) {
	if llmCat == builtin {
		return builtin, max(builtinConf, llmConf), false, false
	}
	if llmConf >= threshold && builtinConf < threshold {
		return llmCat, llmConf, true, true
	}
	return builtin, builtinConf, false, true
}

// llmFieldNames are the fields the model may report, in the order the
// built-in extraction reports them.
var llmFieldNames = []string{FieldContraente, FieldPartitaIVA, FieldCodiceFiscale, FieldEmail, FieldTelefono,
	FieldIndirizzo, FieldCitta, FieldProvincia, FieldNumVeicoli, FieldTarghe, FieldDecorrenza,
	FieldMassimale, FieldProfessione, FieldFatturato, FieldValoreFabbricato, FieldSuperficie, FieldAnnoCostruzione,
	FieldTipoImpianto, FieldValoreImpianto}

// fieldCategory names the category a category-specific field belongs
// to: the built-in extraction only looks for it there, and so an LLM's
// value for it is only taken there.
var fieldCategory = map[string]string{
	FieldMassimale: "RC Professionale", FieldProfessione: "RC Professionale", FieldFatturato: "RC Professionale",
	FieldValoreFabbricato: "Fabbricato", FieldSuperficie: "Fabbricato", FieldAnnoCostruzione: "Fabbricato",
	FieldTipoImpianto: "Rischi Tecnologici", FieldValoreImpianto: "Rischi Tecnologici",
}

// mergeLLMFields adds to fields (the built-in extraction's) the model's
// fields the built-in code did not find, each only if it passes the
// built-in validators and its text is found in the document, with the
// span the built-in code locates. The built-in value wins where both
// exist: it was found by a validated pattern in a known place.
func (x *extractor) mergeLLMFields(fields []events.Field, answer []llmField) []events.Field {
	have := map[string]bool{}
	for _, f := range fields {
		have[f.Name] = true
	}
	for _, f := range answer {
		if have[f.Name] || !slices.Contains(llmFieldNames, f.Name) {
			continue
		}
		if cat, ok := fieldCategory[f.Name]; ok && cat != x.category {
			continue
		}
		h, ok := x.locate(f.Name, strings.TrimSpace(f.Value))
		if !ok || h.value == "" {
			continue
		}
		have[f.Name] = true
		fields = append(fields, x.field(f.Name, h))
	}
	return fields
}

var nonDigit = regexp.MustCompile(`\D`)

// locate validates an LLM's value for field name and finds it in the
// document: the hit carries the normalised value (as the built-in
// extraction writes it) and the span of its text. ok is false when the
// value fails validation or does not occur in the document.
func (x *extractor) locate(name, v string) (hit, bool) {
	if v == "" {
		return hit{}, false
	}
	switch name {
	case FieldPartitaIVA:
		v = strings.TrimPrefix(strings.ToUpper(strings.ReplaceAll(v, " ", "")), "IT")
		if !ValidPartitaIVA(v) {
			return hit{}, false
		}
		return x.findMatch(pivaRE, func(s string, m []int) (string, int, int) { return s[m[2]:m[3]], m[2], m[3] }, v)
	case FieldCodiceFiscale:
		v = strings.ToUpper(strings.ReplaceAll(v, " ", ""))
		if !ValidCodiceFiscale(v) {
			return hit{}, false
		}
		return x.findMatch(cfRE, func(s string, m []int) (string, int, int) { return strings.ToUpper(s[m[0]:m[1]]), m[0], m[1] }, v)
	case FieldEmail:
		v = strings.ToLower(v)
		if emailRE.FindString(v) != v || x.isSelf(strings.ReplaceAll(v[strings.IndexByte(v, '@')+1:], "-", " ")) {
			return hit{}, false
		}
		if h, ok := x.findMatch(emailRE, func(s string, m []int) (string, int, int) { return strings.ToLower(s[m[0]:m[1]]), m[0], m[1] }, v); ok {
			return h, true
		}
		return hit{}, false
	case FieldTelefono:
		digits := strings.TrimPrefix(nonDigit.ReplaceAllString(v, ""), "39")
		if strings.HasPrefix(v, "0") || strings.HasPrefix(v, "3") { // no +39 to strip
			digits = nonDigit.ReplaceAllString(v, "")
		}
		if len(digits) < 6 || len(digits) > 11 {
			return hit{}, false
		}
		return x.findMatch(phoneRE, func(s string, m []int) (string, int, int) { return s[m[2]:m[3]] + s[m[6]:m[7]], m[0], m[1] }, digits)
	case FieldTarghe:
		return x.locatePlates(v)
	case FieldProvincia:
		v = strings.ToUpper(v)
		if !provinces[v] {
			return hit{}, false
		}
		return x.findText(v, false)
	case FieldDecorrenza:
		ds := itparse.FindDates(v)
		if len(ds) != 1 {
			return hit{}, false
		}
		iso := ds[0].ISO()
		for i, s := range x.secs {
			for _, d := range itparse.FindDates(s.Text) {
				if d.ISO() == iso {
					return hit{i, d.Start, d.End, iso}, true
				}
			}
		}
		return hit{}, false
	case FieldMassimale, FieldFatturato, FieldValoreFabbricato, FieldValoreImpianto:
		want, ok := amountOf(v)
		if !ok || want <= 0 {
			return hit{}, false
		}
		for i, s := range x.secs {
			for _, a := range itparse.FindAmounts(s.Text) {
				if math.Abs(a.Value-want) < 0.5 {
					return hit{i, a.Start, a.End, itparse.FormatInt(a.Value)}, true
				}
			}
		}
		return hit{}, false
	case FieldNumVeicoli, FieldSuperficie, FieldAnnoCostruzione:
		n, ok := itparse.ParseNumber(v)
		if !ok || n <= 0 || n != math.Trunc(n) || name == FieldAnnoCostruzione && (n < 1800 || n > 2100) {
			return hit{}, false
		}
		h, ok := x.findText(v, true)
		h.value = strconv.FormatInt(int64(n), 10)
		return h, ok
	case FieldContraente:
		if x.isSelf(strings.ToLower(v)) {
			return hit{}, false
		}
		return x.findText(v, true)
	default: // indirizzo, citta, professione, tipo_impianto: free text, found verbatim
		return x.findText(v, true)
	}
}

// amountOf reads an amount the way the built-in extraction does ("1.000.000
// €", "un milione") or as a plain number ("1000000", "1000000.00").
func amountOf(v string) (float64, bool) {
	if as := itparse.FindAmounts(v); len(as) == 1 {
		return as[0].Value, true
	}
	if n, ok := itparse.ParseNumber(v); ok {
		return n, true
	}
	n, err := strconv.ParseFloat(v, 64)
	return n, err == nil
}

// findMatch returns the first match of re whose normalised value (from
// norm) is want.
func (x *extractor) findMatch(re *regexp.Regexp, norm func(text string, m []int) (v string, start, end int), want string) (hit, bool) {
	for i, s := range x.secs {
		for _, m := range re.FindAllStringSubmatchIndex(s.Text, -1) {
			if v, start, end := norm(s.Text, m); v == want {
				return hit{i, start, end, v}, true
			}
		}
	}
	return hit{}, false
}

// findText finds v verbatim (runs of white space in v match any run of
// white space) at word boundaries; keep says whether the hit's value is
// the text as written (collapsed) or v itself.
func (x *extractor) findText(v string, keep bool) (hit, bool) {
	parts := strings.Fields(v)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile(strings.Join(parts, `\s+`))
	if err != nil {
		return hit{}, false
	}
	for i, s := range x.secs {
		for _, m := range re.FindAllStringIndex(s.Text, -1) {
			if !boundary(s.Text, m[0], m[1]) {
				continue
			}
			val := v
			if keep {
				val = strings.Join(strings.Fields(s.Text[m[0]:m[1]]), " ")
			}
			return hit{i, m[0], m[1], val}, true
		}
	}
	return hit{}, false
}

// boundary reports whether text[start:end] is not part of a longer word
// or number.
func boundary(text string, start, end int) bool {
	word := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	if r, _ := utf8.DecodeLastRuneInString(text[:start]); start > 0 && word(r) {
		if f, _ := utf8.DecodeRuneInString(text[start:]); word(f) {
			return false
		}
	}
	if r, _ := utf8.DecodeRuneInString(text[end:]); end < len(text) && word(r) {
		if l, _ := utf8.DecodeLastRuneInString(text[:end]); word(l) {
			return false
		}
	}
	return true
}

// locatePlates accepts a list of plates only if every one is a valid
// Italian plate found in the document; the span is the first one's.
func (x *extractor) locatePlates(v string) (hit, bool) {
	var plates []string
	first := hit{sec: -1}
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == '\n' }) {
		p = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(p), " ", ""))
		if m := plateRE.FindString(p); m != p || p == "" {
			return hit{}, false
		}
		h, ok := x.findMatch(plateRE, func(s string, m []int) (string, int, int) {
			return s[m[2]:m[3]] + s[m[4]:m[5]] + s[m[6]:m[7]], m[0], m[1]
		}, p)
		if !ok {
			return hit{}, false
		}
		if first.sec < 0 {
			first = h
		}
		if !slices.Contains(plates, p) {
			plates = append(plates, p)
		}
	}
	if len(plates) == 0 {
		return hit{}, false
	}
	first.value = strings.Join(plates, ",")
	return first, true
}
