// Package config declares every setting of prismflow once and loads it
// with viper from, in rising precedence, built-in defaults, a YAML file,
// PRISMFLOW_* environment variables and command-line flags.
//
// The declaration (Options) is the single source: it sets the defaults,
// binds the environment variable names, and prints the reference that
// `prismflow config` and the README show. No other package reads viper or
// the environment; they receive the typed Config.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is the whole configuration of one prismflow process.
type Config struct {
	// DataDir holds everything the embedded mode keeps: the broker log,
	// blobs and the private PostgreSQL. Default ./data.
	DataDir string `mapstructure:"data_dir"`
	// Stages to run in this process; empty means all of them, "none"
	// (alone) none: a process serving only the API, console and connectors.
	Stages   []string     `mapstructure:"stages"`
	HTTP     HTTP         `mapstructure:"http"`
	Kafka    Kafka        `mapstructure:"kafka"`
	Reg      Registry     `mapstructure:"schema_registry"`
	PG       Postgres     `mapstructure:"postgres"`
	Blob     Blob         `mapstructure:"blob"`
	Ingest   Ingest       `mapstructure:"ingest"`
	Stage    StageRuntime `mapstructure:"runtime"`
	Extract  Extract      `mapstructure:"extract"`
	Analyze  Analyze      `mapstructure:"analyze"`
	Classify Classify     `mapstructure:"classify"`
	Render   Render       `mapstructure:"render"`
	LLM      LLM          `mapstructure:"llm"`
	IMAP     IMAP         `mapstructure:"imap"`
	Auth     Auth         `mapstructure:"auth"`
	Console  Console      `mapstructure:"console"`
	// APIKey is what the command-line client sends (upload, status);
	// never logged.
	APIKey Secret `mapstructure:"api_key"`
	Log    Log    `mapstructure:"log"`
	OTel   OTel   `mapstructure:"otel"`
}

// OTel configures trace export.
type OTel struct {
	// Endpoint is the OTLP/HTTP URL spans go to, e.g.
	// http://collector:4318; empty: no export, at no cost.
	Endpoint string `mapstructure:"endpoint"`
	// ServiceName names this process in traces. Default prismflow.
	ServiceName string `mapstructure:"service_name"`
}

// HTTP is the API server.
type HTTP struct {
	// Addr the API (and the embedded console) listens on. Default localhost:8080.
	Addr string `mapstructure:"addr"`
	// OpsAddr serves /healthz, /readyz and /metrics alone, for processes
	// without the API (stage workers). Default "" (off; the API serves them).
	OpsAddr string `mapstructure:"ops_addr"`
	// Pprof serves Go's profiler under /debug/pprof/ beside /metrics. Off
	// by default: like /metrics it is unauthenticated, and it shows the
	// process's internals.
	Pprof bool `mapstructure:"pprof"`
}

// Kafka says which brokers to use.
type Kafka struct {
	// Brokers, comma separated. Empty: run the embedded broker.
	Brokers []string `mapstructure:"brokers"`
	// EmbeddedAddr is where the embedded broker listens. Default localhost:9092.
	EmbeddedAddr string `mapstructure:"embedded_addr"`
	// Partitions of each topic created at start. Default 6.
	Partitions int32 `mapstructure:"partitions"`
	SASL       SASL  `mapstructure:"sasl"`
	TLS        TLS   `mapstructure:"tls"`
}

// SASL authenticates every Kafka client of the process.
type SASL struct {
	// Mechanism: none, plain, scram-sha-256 or scram-sha-512. Default none.
	Mechanism string `mapstructure:"mechanism"`
	Username  string `mapstructure:"username"`
	// Password is never logged.
	Password Secret `mapstructure:"password"`
}

// TLS encrypts every Kafka connection of the process.
type TLS struct {
	// Enabled turns TLS on; the other fields imply it.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates; empty: the system pool.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key for
	// mutual TLS; both or neither.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// InsecureSkipVerify accepts any broker certificate (tests only).
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// On reports whether any TLS setting asks for TLS.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// Registry is the schema registry.
type Registry struct {
	// URL of a Confluent-compatible registry. Empty: serve the embedded one.
	URL string `mapstructure:"url"`
	// EmbeddedAddr is where the embedded registry listens. Default localhost:8081.
	EmbeddedAddr string `mapstructure:"embedded_addr"`
}

// Postgres is the database of results.
type Postgres struct {
	// DSN of the database. Empty: start a private PostgreSQL under DataDir.
	DSN string `mapstructure:"dsn"`
}

// Blob is where files live.
type Blob struct {
	// URL: file:///path or s3://bucket/prefix?endpoint=...; empty: DataDir/blobs.
	URL string `mapstructure:"url"`
}

// Ingest limits what gets in.
type Ingest struct {
	// MaxBytes is the largest file accepted. Default 50 MiB.
	MaxBytes int64 `mapstructure:"max_bytes"`
}

// StageRuntime tunes the Kafka runtime shared by every stage.
type StageRuntime struct {
	// Concurrency is records handled at once per stage (per-key order is
	// kept). Default 0: one per CPU.
	Concurrency int `mapstructure:"concurrency"`
	// RetryAttempts for transient errors before dead-lettering. Default 5.
	RetryAttempts int `mapstructure:"retry_attempts"`
	// RetryInitial backoff. Default 200ms.
	RetryInitial time.Duration `mapstructure:"retry_initial"`
	// RetryMax backoff. Default 10s.
	RetryMax time.Duration `mapstructure:"retry_max"`
	// InstanceID names this process stably across restarts (e.g. a
	// StatefulSet pod name) for static group membership and fencing.
	// Default: "embedded" with the embedded broker, else a random id.
	InstanceID string `mapstructure:"instance_id"`
}

// Extract limits the extract stage.
type Extract struct {
	// MaxPages per document. Default 2000.
	MaxPages int `mapstructure:"max_pages"`
	// OCRLanguages for tesseract, joined by '+'. Default ita+eng.
	OCRLanguages string `mapstructure:"ocr_languages"`
	// OCRDPI is the resolution scanned pages are rendered at. Default 300.
	OCRDPI float64 `mapstructure:"ocr_dpi"`
	// MaxPixels per rendered page or image (decompression bombs). Default
	// 100 megapixels.
	MaxPixels int64 `mapstructure:"max_pixels"`
	// PageTimeout bounds the OCR of one page. Default 120s.
	PageTimeout time.Duration `mapstructure:"page_timeout"`
	// OCRWorkers is pages OCRed at once in the process, over all
	// documents. Default 0: one per CPU.
	OCRWorkers int `mapstructure:"ocr_workers"`
}

// Analyze chooses the feedback provider.
type Analyze struct {
	// Provider: rules (built in), openai or bedrock (see LLM). Default rules.
	Provider string `mapstructure:"provider"`
	// Concurrency is sections analyzed at once per document. Default 4.
	Concurrency int `mapstructure:"concurrency"`
}

// Classify configures categories.
type Classify struct {
	// Taxonomy file (YAML or JSON); empty: the built-in insurance taxonomy.
	Taxonomy string `mapstructure:"taxonomy"`
	// Model file written by `prismflow train`; empty: the built-in model,
	// trained at start from the examples embedded in the binary.
	Model string `mapstructure:"model"`
	// ReviewThreshold: below this confidence a document needs review. Default 0.6.
	ReviewThreshold float64 `mapstructure:"review_threshold"`
	// Provider: rules (the built-in trained model alone), openai or
	// bedrock (see LLM): the LLM's answer is recorded beside the built-in
	// model's, which always runs, and a disagreement needs review. Default rules.
	Provider string `mapstructure:"provider"`
}

// Render configures outputs.
type Render struct {
	// From is the sender of reply drafts.
	From string `mapstructure:"from"`
	// Templates is a folder of reply templates (<category>.tmpl, e.g.
	// flotta_auto.tmpl); empty: the built-in ones.
	Templates string `mapstructure:"templates"`
	// Forms is a folder of AcroForm templates (<category>.pdf, e.g.
	// flotta_auto.pdf) filled and flattened into form.pdf; empty: the
	// built-in ones.
	Forms string `mapstructure:"forms"`
}

// LLM configures the model providers a stage may choose (analyze.provider,
// classify.provider).
type LLM struct {
	OpenAI  OpenAI  `mapstructure:"openai"`
	Bedrock Bedrock `mapstructure:"bedrock"`
	// Timeout of one HTTP call to a provider. Default 60s.
	Timeout time.Duration `mapstructure:"timeout"`
	// Attempts per call for throttling, 5xx and timeouts. Default 4.
	Attempts int `mapstructure:"attempts"`
	// Cache answers in PostgreSQL (needs postgres). Default true.
	Cache bool `mapstructure:"cache"`
}

// LLMLimits are a provider's throughput limits and prices.
type LLMLimits struct {
	// Concurrency is calls in flight to the provider. Default 4.
	Concurrency int `mapstructure:"concurrency"`
	// RatePerSecond is the token-bucket rate of calls; 0 = unlimited.
	RatePerSecond float64 `mapstructure:"rate_per_second"`
	// PriceInputPer1K and PriceOutputPer1K are USD per 1000 tokens, for
	// the cost estimate.
	PriceInputPer1K  float64 `mapstructure:"price_input_per_1k"`
	PriceOutputPer1K float64 `mapstructure:"price_output_per_1k"`
}

// OpenAI is any OpenAI-compatible chat-completions endpoint.
type OpenAI struct {
	// BaseURL including the version path. Default https://api.openai.com/v1.
	BaseURL string `mapstructure:"base_url"`
	// Model name. Default gpt-4o-mini.
	Model string `mapstructure:"model"`
	// APIKey is sent as a bearer token; it prints as "***".
	APIKey Secret `mapstructure:"api_key"`
	// JSONObject uses response_format json_object for servers without
	// json_schema. Default false (json_schema, with automatic fallback).
	JSONObject bool      `mapstructure:"json_object"`
	Limits     LLMLimits `mapstructure:",squash"`
}

// Bedrock is AWS Bedrock's Converse API; credentials come from the
// standard AWS chain.
type Bedrock struct {
	// ModelID, e.g. anthropic.claude-3-haiku-20240307-v1:0 or an
	// inference profile id.
	ModelID string `mapstructure:"model_id"`
	// Region; empty: the AWS chain's (AWS_REGION).
	Region string `mapstructure:"region"`
	// Endpoint overrides the service URL (VPC endpoints, tests).
	Endpoint string    `mapstructure:"endpoint"`
	Limits   LLMLimits `mapstructure:",squash"`
}

// Secret is a string that never prints: fmt, %v and slog show "***".
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoding/json (and slog's JSON handler, which
// marshals whole structs) from printing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// IMAP configures the inbox connector (prismflow inbox, and prismflow
// run when any mailbox is configured).
//
// Mailboxes is a list, which environment variables cannot express well:
// declare it in the YAML file (imap.mailboxes). The PRISMFLOW_IMAP_*
// variables describe one more mailbox, named "env", added to the list
// when PRISMFLOW_IMAP_ADDR is set.
type IMAP struct {
	// Tenant owns the documents the connector creates. Default "default".
	Tenant string `mapstructure:"tenant"`
	// Mailboxes to watch; YAML only.
	Mailboxes []IMAPMailbox `mapstructure:"mailboxes"`
	// The single mailbox of the environment variables (see above).
	Env IMAPMailbox `mapstructure:",squash"`
}

// IMAPMailbox is one watched mailbox of one account.
type IMAPMailbox struct {
	// Name identifies the mailbox in logs and in the record of ingested
	// messages; it must stay the same across restarts. Required, unique.
	Name string `mapstructure:"name"`
	// Addr is the server's host:port.
	Addr string `mapstructure:"addr"`
	// TLS: none, tls (implicit, port 993) or starttls. Default tls.
	TLS string `mapstructure:"tls"`
	// InsecureSkipVerify accepts any server certificate (tests only).
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
	Username           string `mapstructure:"username"`
	// Password logs in with LOGIN; never logged.
	Password Secret `mapstructure:"password"`
	// XOAuth2Token, when set, authenticates with SASL XOAUTH2 instead of
	// the password; never logged.
	XOAuth2Token Secret `mapstructure:"xoauth2_token"`
	// Mailbox is the folder to watch. Default INBOX.
	Mailbox string `mapstructure:"mailbox"`
	// IDLE waits for new mail with IMAP IDLE when the server supports it.
	// Default true; false polls.
	IDLE *bool `mapstructure:"idle"`
	// PollInterval is how often the mailbox is searched when polling, and
	// the longest wait under IDLE. Default 1m.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// After says what happens to an ingested message: flag (add the
	// keyword Flag) or move (to MoveTo). Default flag.
	After string `mapstructure:"after"`
	// Flag is the keyword added by after=flag. Default $PrismflowIngested.
	Flag string `mapstructure:"flag"`
	// MoveTo is the folder for after=move; created when missing.
	MoveTo string    `mapstructure:"move_to"`
	Rules  IMAPRules `mapstructure:"rules"`
}

// IMAPRules choose the messages of a mailbox that become documents. A
// message is taken when at least one of its attachments passes every
// rule that is set; with no rule set, every message is taken. Messages
// not taken are recorded as skipped and left in the mailbox unmarked.
type IMAPRules struct {
	// ContentTypes the attachment must have (as the message declares
	// them), e.g. application/pdf or image/*.
	ContentTypes []string `mapstructure:"content_types"`
	// Filenames are globs (path.Match, case-insensitive) the attachment's
	// file name must match, e.g. *.pdf.
	Filenames []string `mapstructure:"filenames"`
	// MaxBytes is the largest attachment, encoded size; 0 = no limit.
	MaxBytes int64 `mapstructure:"max_bytes"`
}

// MailboxList is every configured mailbox: the YAML list plus the one
// of the environment variables, if PRISMFLOW_IMAP_ADDR is set.
func (c IMAP) MailboxList() []IMAPMailbox {
	out := append([]IMAPMailbox(nil), c.Mailboxes...)
	if c.Env.Addr != "" {
		m := c.Env
		if m.Name == "" {
			m.Name = "env"
		}
		out = append(out, m)
	}
	return out
}

// Auth protects the HTTP API.
type Auth struct {
	// Required forces API keys even on loopback. The API always needs
	// them when it listens beyond loopback. Default false.
	Required bool `mapstructure:"required"`
	// RatePerSecond limits each API key's requests; Burst is the bucket
	// size. Defaults 50 and 100.
	RatePerSecond float64 `mapstructure:"rate_per_second"`
	Burst         int     `mapstructure:"burst"`
}

// Console configures the reviewer web console served on http.addr.
type Console struct {
	// Enabled serves the console at / beside the API. Default true.
	Enabled bool `mapstructure:"enabled"`
	// SessionTTL is how long a console sign-in lasts. Default 12h.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
	// PageCache is the folder of rendered page images; empty =
	// data_dir/page-cache.
	PageCache string `mapstructure:"page_cache"`
	// PageCacheBytes bounds the page cache on disk; the least recently
	// used images go first. Default 512 MiB.
	PageCacheBytes int64 `mapstructure:"page_cache_bytes"`
	// ChatProvider answers questions about a document: rules (retrieval
	// over the sections), openai or bedrock (see LLM). Empty = the
	// analyze stage's provider.
	ChatProvider string `mapstructure:"chat_provider"`
}

// Log configures logging.
type Log struct {
	// Level: debug, info, warn, error. Default info.
	Level string `mapstructure:"level"`
	// Format: text or json. Default text.
	Format string `mapstructure:"format"`
}

// Option declares one setting: its viper key, default and meaning. The
// environment variable is PRISMFLOW_ + the key upper-cased with dots as
// underscores.
type Option struct {
	Key     string
	Default any
	Doc     string
}

// Env is the environment variable that sets o.
func (o Option) Env() string {
	return "PRISMFLOW_" + strings.ToUpper(strings.ReplaceAll(o.Key, ".", "_"))
}

// Options is every setting, in the order the reference prints them.
var Options = []Option{
	{"data_dir", "./data", "Folder for the embedded broker, blobs and private PostgreSQL."},
	{"stages", []string{}, "Stages this process runs (comma separated); empty = all; none = no stage (API, console and connectors only)."},
	{"http.addr", "localhost:8080", "Address of the HTTP API; empty disables it."},
	{"http.ops_addr", "", "Address serving only /healthz, /readyz and /metrics (for stage workers without the API); empty = off."},
	{"http.pprof", false, "Serve Go's profiler (CPU, heap, goroutines) at /debug/pprof/ beside /metrics; unauthenticated, so keep it off where the ops endpoints are reachable by others."},
	{"kafka.brokers", []string{}, "Kafka bootstrap brokers (comma separated); empty = embedded broker."},
	{"kafka.embedded_addr", "localhost:9092", "Listen address of the embedded broker."},
	{"kafka.partitions", 6, "Partitions of each topic created at start."},
	{"kafka.sasl.mechanism", "none", "SASL mechanism of every Kafka client: none, plain, scram-sha-256 or scram-sha-512. With the embedded broker, a mechanism other than none also makes the broker require it (for trying SASL locally)."},
	{"kafka.sasl.username", "", "SASL user name."},
	{"kafka.sasl.password", "", "SASL password (never logged)."},
	{"kafka.tls.enabled", false, "Connect to Kafka over TLS (implied by the other kafka.tls settings)."},
	{"kafka.tls.ca_file", "", "PEM file of the CAs that sign the brokers' certificates; empty = the system pool."},
	{"kafka.tls.cert_file", "", "PEM client certificate for mutual TLS (with kafka.tls.key_file)."},
	{"kafka.tls.key_file", "", "PEM private key of kafka.tls.cert_file."},
	{"kafka.tls.insecure_skip_verify", false, "Accept any broker certificate (tests only)."},
	{"schema_registry.url", "", "Confluent-compatible schema registry URL; empty = embedded registry."},
	{"schema_registry.embedded_addr", "localhost:8081", "Listen address of the embedded registry."},
	{"postgres.dsn", "", "PostgreSQL DSN; empty = private PostgreSQL under data_dir."},
	{"blob.url", "", "Blob store: file:///path or s3://bucket/prefix?endpoint=URL&region=R&path_style=true; empty = data_dir/blobs."},
	{"ingest.max_bytes", int64(50 << 20), "Largest accepted file, in bytes."},
	{"runtime.concurrency", 0, "Records handled at once per stage (0 = one per CPU); per-key order is kept."},
	{"runtime.retry_attempts", 5, "Attempts for a transient error before the record is dead-lettered."},
	{"runtime.retry_initial", 200 * time.Millisecond, "First retry backoff (exponential, full jitter)."},
	{"runtime.retry_max", 10 * time.Second, "Largest retry backoff."},
	{"runtime.instance_id", "", "Stable name of this process across restarts (e.g. pod name) for fast takeover after a crash; never shared by two live processes. Empty: \"embedded\" with the embedded broker, else random."},
	{"extract.max_pages", 2000, "Pages per document before it is refused."},
	{"extract.ocr_languages", "ita+eng", "Tesseract languages for OCR, joined by + (each needs its tesseract-ocr-<lang> package)."},
	{"extract.ocr_dpi", 300.0, "Resolution scanned PDF pages are rendered at for OCR."},
	{"extract.max_pixels", int64(100_000_000), "Largest page or image, in pixels, before it is refused (decompression bombs)."},
	{"extract.page_timeout", 120 * time.Second, "Longest OCR of one page before the document is refused."},
	{"extract.ocr_workers", 0, "Pages OCRed at once in this process over all documents (0 = one per CPU)."},
	{"analyze.provider", "rules", "Feedback provider: rules (built in), openai or bedrock (falls back to rules on invalid output or an outage)."},
	{"analyze.concurrency", 4, "Sections analyzed at once per document."},
	{"classify.taxonomy", "", "Taxonomy file; empty = built-in insurance categories."},
	{"classify.model", "", "Classifier model file written by prismflow train; empty = built-in model trained from the embedded examples."},
	{"classify.review_threshold", 0.6, "Confidence below which a document is flagged needs_review."},
	{"classify.provider", "rules", "Classification provider: rules (the built-in trained model alone), openai or bedrock (asked beside the built-in model; both answers recorded, a disagreement flags needs_review; falls back to the built-in model on invalid output or an outage)."},
	{"render.from", "Navigli Broker <preventivi@navigli-broker.example>", "From address of reply drafts."},
	{"render.templates", "", "Folder of reply templates, one <category>.tmpl per taxonomy category; empty = built-in Italian templates."},
	{"render.forms", "", "Folder of PDF AcroForm templates, one <category>.pdf per taxonomy category, fields named after the extracted fields; empty = built-in Italian quote request forms."},
	{"llm.timeout", 60 * time.Second, "Timeout of one HTTP call to an LLM provider."},
	{"llm.attempts", 4, "Tries per LLM call on throttling (429), 5xx and timeouts (exponential backoff, full jitter, honours Retry-After)."},
	{"llm.cache", true, "Cache validated LLM answers in PostgreSQL by (provider, model, prompt version, input)."},
	{"llm.openai.base_url", "https://api.openai.com/v1", "OpenAI-compatible API base URL (OpenAI, vLLM, Ollama http://localhost:11434/v1, llama.cpp)."},
	{"llm.openai.model", "gpt-4o-mini", "Model name at the OpenAI-compatible endpoint."},
	{"llm.openai.api_key", "", "API key for the OpenAI-compatible endpoint (never logged)."},
	{"llm.openai.json_object", false, "Ask for response_format json_object instead of json_schema (older servers)."},
	{"llm.openai.concurrency", 4, "OpenAI calls in flight."},
	{"llm.openai.rate_per_second", 5.0, "OpenAI calls per second (token bucket); 0 = unlimited."},
	{"llm.openai.price_input_per_1k", 0.00015, "OpenAI price in USD per 1000 input tokens (cost estimate)."},
	{"llm.openai.price_output_per_1k", 0.0006, "OpenAI price in USD per 1000 output tokens (cost estimate)."},
	{"llm.bedrock.model_id", "anthropic.claude-3-haiku-20240307-v1:0", "Bedrock model or inference profile id."},
	{"llm.bedrock.region", "", "Bedrock region; empty = the AWS chain's (AWS_REGION)."},
	{"llm.bedrock.endpoint", "", "Bedrock endpoint override (VPC endpoint); empty = the regional one."},
	{"llm.bedrock.concurrency", 4, "Bedrock calls in flight."},
	{"llm.bedrock.rate_per_second", 5.0, "Bedrock calls per second (token bucket); 0 = unlimited."},
	{"llm.bedrock.price_input_per_1k", 0.00025, "Bedrock price in USD per 1000 input tokens (cost estimate)."},
	{"llm.bedrock.price_output_per_1k", 0.00125, "Bedrock price in USD per 1000 output tokens (cost estimate)."},
	{"imap.tenant", "default", "Tenant owning the documents of the IMAP connector. Mailboxes are a YAML list, imap.mailboxes (see README); the imap.* settings below describe one more."},
	{"imap.name", "env", "Name of the environment's mailbox (keys its record of ingested messages; keep it stable)."},
	{"imap.addr", "", "IMAP server host:port of the environment's mailbox; empty = none."},
	{"imap.tls", "tls", "IMAP transport security: none, tls or starttls."},
	{"imap.username", "", "IMAP user name."},
	{"imap.password", "", "IMAP password, sent with LOGIN (never logged)."},
	{"imap.xoauth2_token", "", "OAuth2 access token: authenticate with SASL XOAUTH2 instead of the password (never logged)."},
	{"imap.mailbox", "INBOX", "IMAP folder watched."},
	{"imap.poll_interval", time.Minute, "How often the folder is searched when polling, and the longest IDLE wait."},
	{"imap.after", "flag", "What marks an ingested message: flag (keyword imap.flag) or move (to imap.move_to)."},
	{"imap.flag", "$PrismflowIngested", "Keyword added to ingested messages with after=flag."},
	{"imap.move_to", "", "Folder ingested messages move to with after=move."},
	{"auth.required", false, "Require API keys even when the API listens on loopback only (beyond loopback they are always required)."},
	{"auth.rate_per_second", 50.0, "Requests per second allowed per API key (token bucket); 0 = unlimited."},
	{"auth.burst", 100, "Burst of requests per API key above the rate."},
	{"console.enabled", true, "Serve the reviewer web console at / on http.addr."},
	{"console.session_ttl", 12 * time.Hour, "How long a console sign-in lasts."},
	{"console.page_cache", "", "Folder of rendered page images; empty = data_dir/page-cache."},
	{"console.page_cache_bytes", int64(512 << 20), "Largest size of the page image cache on disk (least recently used images evicted)."},
	{"console.chat_provider", "", "Provider answering document chat: rules (retrieval over the sections), openai or bedrock; empty = analyze.provider."},
	{"api_key", "", "API key the command-line client sends (upload, status); create one with prismflow apikey create."},
	{"log.level", "info", "Log level: debug, info, warn, error."},
	{"log.format", "text", "Log format: text or json."},
	{"otel.endpoint", "", "OTLP/HTTP endpoint traces are exported to (e.g. http://otel-collector:4318; the path /v1/traces is added when missing); empty = no tracing."},
	{"otel.service_name", "prismflow", "Service name of this process in traces."},
}

// Load reads the configuration. file may be empty; flags may be nil. A
// flag binds to the option whose key it names with dots or dashes
// (e.g. --http-addr or --http.addr).
func Load(file string, flags *pflag.FlagSet) (Config, error) {
	v := viper.New()
	// An empty variable is a choice (PRISMFLOW_HTTP_ADDR= turns the API
	// off), not an absence.
	v.AllowEmptyEnv(true)
	for _, o := range Options {
		v.SetDefault(o.Key, o.Default)
		if err := v.BindEnv(o.Key, o.Env()); err != nil {
			return Config{}, fmt.Errorf("config: bind %s: %w", o.Env(), err)
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: read %s: %w", file, err)
		}
	}
	if flags != nil {
		var bindErr error
		flags.VisitAll(func(f *pflag.Flag) {
			key := strings.ReplaceAll(f.Name, "-", ".")
			for _, o := range Options {
				if o.Key == key || strings.ReplaceAll(o.Key, "_", ".") == key {
					if err := v.BindPFlag(o.Key, f); err != nil && bindErr == nil {
						bindErr = err
					}
				}
			}
		})
		if bindErr != nil {
			return Config{}, fmt.Errorf("config: bind flags: %w", bindErr)
		}
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.Kafka.Brokers = splitList(c.Kafka.Brokers)
	c.Stages = splitList(c.Stages)
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	return c, c.validate()
}

// splitList accepts both YAML lists and comma-separated env values.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (c Config) validate() error {
	switch {
	case !slices.Contains([]string{"", "none", "plain", "scram-sha-256", "scram-sha-512"}, strings.ToLower(c.Kafka.SASL.Mechanism)):
		return fmt.Errorf("config: kafka.sasl.mechanism must be none, plain, scram-sha-256 or scram-sha-512, got %q", c.Kafka.SASL.Mechanism)
	case (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == ""):
		return fmt.Errorf("config: kafka.tls.cert_file and kafka.tls.key_file go together")
	case c.Kafka.Partitions < 1:
		return fmt.Errorf("config: kafka.partitions must be at least 1, got %d", c.Kafka.Partitions)
	case c.Ingest.MaxBytes < 1:
		return fmt.Errorf("config: ingest.max_bytes must be positive, got %d", c.Ingest.MaxBytes)
	case c.Stage.RetryAttempts < 1:
		return fmt.Errorf("config: runtime.retry_attempts must be at least 1, got %d", c.Stage.RetryAttempts)
	case c.Analyze.Provider != "" && c.Analyze.Provider != "rules" && c.Analyze.Provider != "openai" && c.Analyze.Provider != "bedrock":
		return fmt.Errorf("config: analyze.provider must be rules, openai or bedrock, got %q", c.Analyze.Provider)
	case c.Classify.Provider != "" && c.Classify.Provider != "rules" && c.Classify.Provider != "openai" && c.Classify.Provider != "bedrock":
		return fmt.Errorf("config: classify.provider must be rules, openai or bedrock, got %q", c.Classify.Provider)
	case c.Console.ChatProvider != "" && c.Console.ChatProvider != "rules" && c.Console.ChatProvider != "openai" && c.Console.ChatProvider != "bedrock":
		return fmt.Errorf("config: console.chat_provider must be rules, openai or bedrock, got %q", c.Console.ChatProvider)
	case c.Classify.ReviewThreshold < 0 || c.Classify.ReviewThreshold > 1:
		return fmt.Errorf("config: classify.review_threshold must be within 0..1, got %v", c.Classify.ReviewThreshold)
	}
	return nil
}

// Embedded reports whether this process runs the in-process broker.
func (c Config) Embedded() bool { return len(c.Kafka.Brokers) == 0 }

// BlobURL is the configured blob URL or the embedded default.
func (c Config) BlobURL() string {
	if c.Blob.URL != "" {
		return c.Blob.URL
	}
	return "file://" + filepath.Join(c.DataDir, "blobs")
}

// PageCacheDir is the configured page image cache or the default under
// the data folder.
func (c Config) PageCacheDir() string {
	if c.Console.PageCache != "" {
		return c.Console.PageCache
	}
	return filepath.Join(c.DataDir, "page-cache")
}

// ChatProvider is the provider answering document chat: the console's
// own choice or, unset, the analyze stage's.
func (c Config) ChatProvider() string {
	switch {
	case c.Console.ChatProvider != "":
		return c.Console.ChatProvider
	case c.Analyze.Provider != "":
		return c.Analyze.Provider
	}
	return "rules"
}

// WriteReference prints every option with its environment variable and
// default, as `prismflow config` shows it.
func WriteReference(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, o := range Options {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", o.Key, o.Env(), o.Default, o.Doc)
	}
	return tw.Flush()
}
