// Package events declares the Go form of every event that travels between
// prismflow's stages. Each type mirrors one Avro schema in the schemas
// folder (see SchemaName); the avro tags name the Avro fields.
//
// Events are "fat": each one carries the Document it is about and what the
// next stages need, so a stage never has to look anything up in another
// stage's store. Large texts travel inline or, past the claim-check limit,
// as blob references (the *Ref fields), which the runtime resolves before a
// handler sees the event.
package events

import "time"

// Meta says who produced an event and within which trace and run.
type Meta struct {
	Stage        string    `avro:"stage"`
	StageVersion string    `avro:"stage_version"`
	ProducedAt   time.Time `avro:"produced_at"`
	// TraceParent is the W3C traceparent of the document's trace; the
	// runtime also puts it in the Kafka record headers.
	TraceParent string `avro:"traceparent"`
	// Run counts processing runs of a document: a replay starts a new run,
	// and the latest run is the one shown.
	Run int32 `avro:"run"`
}

// Document identifies the file an event is about.
type Document struct {
	ID          string `avro:"id"`
	Tenant      string `avro:"tenant"`
	Filename    string `avro:"filename"`
	ContentType string `avro:"content_type"`
	SizeBytes   int64  `avro:"size_bytes"`
	SHA256      string `avro:"sha256"`
	// Blob is the blob-store key of the original bytes (content addressed).
	Blob     string `avro:"blob"`
	Source   string `avro:"source"` // upload, imap or replay
	Sender   string `avro:"sender"`
	Subject  string `avro:"subject"`
	ParentID string `avro:"parent_id"`
}

// ExtractionMethod says how a page's text was obtained.
type ExtractionMethod string

const (
	MethodDigital ExtractionMethod = "digital" // the PDF's own text layer
	MethodOCR     ExtractionMethod = "ocr"
	MethodNone    ExtractionMethod = "none" // no text yet (needs OCR)
)

// Severity ranks a feedback item.
type Severity string

const (
	SeverityLow    Severity = "low"
	SeverityMedium Severity = "medium"
	SeverityHigh   Severity = "high"
)

// Page is the text of one page.
type Page struct {
	Number     int32            `avro:"number"` // 1-based
	Text       string           `avro:"text"`
	TextRef    string           `avro:"text_ref"`
	Method     ExtractionMethod `avro:"method"`
	Confidence float64          `avro:"confidence"` // 0..1
	NeedsOCR   bool             `avro:"needs_ocr"`
	// Rotation is the degrees the page was turned before OCR.
	Rotation int32 `avro:"rotation"`
}

// Attachment is a file found inside a document (an e-mail attachment, a
// PDF's embedded file). The ingest stage makes each a document of its own
// whose ParentID is the document it came from.
type Attachment struct {
	Filename    string `avro:"filename"`
	ContentType string `avro:"content_type"`
	Blob        string `avro:"blob"`
	SHA256      string `avro:"sha256"`
	SizeBytes   int64  `avro:"size_bytes"`
}

// Section is a titled part of a document's text.
type Section struct {
	Index     int32  `avro:"index"`
	Title     string `avro:"title"`
	Text      string `avro:"text"`
	TextRef   string `avro:"text_ref"`
	PageStart int32  `avro:"page_start"`
	PageEnd   int32  `avro:"page_end"`
}

// FeedbackItem is one remark a reviewer should look at.
type FeedbackItem struct {
	ID           string   `avro:"id"`
	SectionIndex int32    `avro:"section_index"`
	Type         string   `avro:"type"`
	Severity     Severity `avro:"severity"`
	Message      string   `avro:"message"`
	Suggestion   string   `avro:"suggestion"`
	// Quote is an exact span of the section's text the item is about.
	Quote string `avro:"quote"`
}

// Field is one key value found in the document, with where it came from.
type Field struct {
	Name         string `avro:"name"`
	Value        string `avro:"value"`
	Page         int32  `avro:"page"`
	SectionIndex int32  `avro:"section_index"`
	Start        int32  `avro:"start"` // rune offset in the section text, -1 if unknown
	End          int32  `avro:"end"`
}

// Output is a file a stage wrote to the blob store.
type Output struct {
	Name        string `avro:"name"` // form.pdf, reply.eml
	Blob        string `avro:"blob"`
	ContentType string `avro:"content_type"`
	SizeBytes   int64  `avro:"size_bytes"`
	SHA256      string `avro:"sha256"`
}

// DocumentReceived: a file entered the pipeline.
type DocumentReceived struct {
	Meta       Meta      `avro:"meta"`
	Document   Document  `avro:"document"`
	ReceivedAt time.Time `avro:"received_at"`
	// Password opens an encrypted PDF; supplied with the upload.
	Password string `avro:"password"`
}

// TextExtracted: the text of every page.
type TextExtracted struct {
	Meta      Meta     `avro:"meta"`
	Document  Document `avro:"document"`
	PageCount int32    `avro:"page_count"`
	Language  string   `avro:"language"`
	Pages     []Page   `avro:"pages"`
	// Attachments become documents of their own (see Attachment).
	Attachments []Attachment `avro:"attachments"`
}

// SectionsSplit: the document cut into sections.
type SectionsSplit struct {
	Meta      Meta      `avro:"meta"`
	Document  Document  `avro:"document"`
	PageCount int32     `avro:"page_count"`
	Language  string    `avro:"language"`
	Sections  []Section `avro:"sections"`
}

// SectionsAnalyzed: feedback per section.
type SectionsAnalyzed struct {
	Meta      Meta           `avro:"meta"`
	Document  Document       `avro:"document"`
	PageCount int32          `avro:"page_count"`
	Language  string         `avro:"language"`
	Sections  []Section      `avro:"sections"`
	Provider  string         `avro:"provider"`
	Feedback  []FeedbackItem `avro:"feedback"`
	LLM       *LLMUsage      `avro:"llm"` // nil unless an LLM provider ran
}

// LLMUsage is what an LLM provider used for one document, summed over
// its sections.
type LLMUsage struct {
	Sections         int32   `avro:"sections"`          // answered by the model, cache hits included
	CachedSections   int32   `avro:"cached_sections"`   // served from the response cache
	FallbackSections int32   `avro:"fallback_sections"` // answered by the fallback provider
	InputTokens      int64   `avro:"input_tokens"`
	OutputTokens     int64   `avro:"output_tokens"`
	CostUSD          float64 `avro:"cost_usd"` // estimated from the configured prices
	LatencyMS        int64   `avro:"latency_ms"`
}

// DocumentClassified: risk category and key fields.
type DocumentClassified struct {
	Meta        Meta           `avro:"meta"`
	Document    Document       `avro:"document"`
	PageCount   int32          `avro:"page_count"`
	Category    string         `avro:"category"`
	Confidence  float64        `avro:"confidence"`
	NeedsReview bool           `avro:"needs_review"`
	Provider    string         `avro:"provider"`
	Fields      []Field        `avro:"fields"`
	Feedback    []FeedbackItem `avro:"feedback"`
	// The built-in model always runs; with an LLM provider configured the
	// LLM is asked too and both answers are kept, so a reviewer sees why
	// a document was flagged. Category is the one chosen between them.
	BuiltinCategory   string    `avro:"builtin_category"`   // "" in events older than the field
	BuiltinConfidence float64   `avro:"builtin_confidence"` // calibrated
	LLMCategory       string    `avro:"llm_category"`       // "" unless an LLM answered
	LLMConfidence     float64   `avro:"llm_confidence"`
	Disagreement      bool      `avro:"disagreement"` // LLM and built-in chose differently; NeedsReview is set
	LLM               *LLMUsage `avro:"llm"`          // nil unless an LLM provider is configured
}

// FormRendered: the outputs are in the blob store.
type FormRendered struct {
	Meta     Meta     `avro:"meta"`
	Document Document `avro:"document"`
	Category string   `avro:"category"`
	Outputs  []Output `avro:"outputs"`
}

// DeadLetter is a record a stage could not process, kept with its
// original bytes so it can be inspected and redriven.
type DeadLetter struct {
	Meta       Meta              `avro:"meta"`
	DocumentID string            `avro:"document_id"`
	Tenant     string            `avro:"tenant"`
	Topic      string            `avro:"topic"`
	Partition  int32             `avro:"partition"`
	Offset     int64             `avro:"offset"`
	Key        []byte            `avro:"key"`
	Value      []byte            `avro:"value"`
	Headers    map[string]string `avro:"headers"`
	Error      string            `avro:"error"`
	Permanent  bool              `avro:"permanent"`
	Attempts   int32             `avro:"attempts"`
}

// SchemaName names the .avsc file (without extension) of each event.
func (DocumentReceived) SchemaName() string   { return "document_received" }
func (TextExtracted) SchemaName() string      { return "text_extracted" }
func (SectionsSplit) SchemaName() string      { return "sections_split" }
func (SectionsAnalyzed) SchemaName() string   { return "sections_analyzed" }
func (DocumentClassified) SchemaName() string { return "document_classified" }
func (FormRendered) SchemaName() string       { return "form_rendered" }
func (DeadLetter) SchemaName() string         { return "dead_letter" }

// Event is implemented by every event type.
type Event interface {
	SchemaName() string
}

// Documented is implemented by events that carry their Document, which
// the runtime uses for keys, dead letters and logs.
type Documented interface {
	Event
	Doc() Document
}

func (e DocumentReceived) Doc() Document   { return e.Document }
func (e TextExtracted) Doc() Document      { return e.Document }
func (e SectionsSplit) Doc() Document      { return e.Document }
func (e SectionsAnalyzed) Doc() Document   { return e.Document }
func (e DocumentClassified) Doc() Document { return e.Document }
func (e FormRendered) Doc() Document       { return e.Document }

// Metadata returns the event's Meta. SetMeta is on the pointer so that
// the runtime can stamp a handler's output generically.
func (e DocumentReceived) Metadata() Meta   { return e.Meta }
func (e TextExtracted) Metadata() Meta      { return e.Meta }
func (e SectionsSplit) Metadata() Meta      { return e.Meta }
func (e SectionsAnalyzed) Metadata() Meta   { return e.Meta }
func (e DocumentClassified) Metadata() Meta { return e.Meta }
func (e FormRendered) Metadata() Meta       { return e.Meta }
func (e DeadLetter) Metadata() Meta         { return e.Meta }

func (e *DocumentReceived) SetMeta(m Meta)   { e.Meta = m }
func (e *TextExtracted) SetMeta(m Meta)      { e.Meta = m }
func (e *SectionsSplit) SetMeta(m Meta)      { e.Meta = m }
func (e *SectionsAnalyzed) SetMeta(m Meta)   { e.Meta = m }
func (e *DocumentClassified) SetMeta(m Meta) { e.Meta = m }
func (e *FormRendered) SetMeta(m Meta)       { e.Meta = m }
func (e *DeadLetter) SetMeta(m Meta)         { e.Meta = m }

// TextField points at one text of an event and at the reference that
// replaces it when the text is moved to the blob store.
type TextField struct {
	Text *string
	Ref  *string
}

// TextCarrier is implemented by events whose texts can grow past what a
// Kafka record should hold. The runtime moves every text to the blob store
// when the encoded event is over the claim-check limit, and loads them back
// before a handler sees the event, so handlers always see inline text.
type TextCarrier interface {
	TextFields() []TextField
}

func (e *TextExtracted) TextFields() []TextField {
	fs := make([]TextField, len(e.Pages))
	for i := range e.Pages {
		fs[i] = TextField{&e.Pages[i].Text, &e.Pages[i].TextRef}
	}
	return fs
}

func (e *SectionsSplit) TextFields() []TextField { return sectionTexts(e.Sections) }

func (e *SectionsAnalyzed) TextFields() []TextField { return sectionTexts(e.Sections) }

func sectionTexts(ss []Section) []TextField {
	fs := make([]TextField, len(ss))
	for i := range ss {
		fs[i] = TextField{&ss[i].Text, &ss[i].TextRef}
	}
	return fs
}
