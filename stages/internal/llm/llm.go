package llm

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// ErrInvalidOutput means the model kept answering something that does not
// validate against the request's schema, even after being shown the
// error. Callers fall back to a deterministic provider.
var ErrInvalidOutput = errors.New("llm: invalid structured output")

// ErrUnavailable means the provider's circuit breaker is open: it failed
// repeatedly and is not being called for a while. Callers fall back at
// once rather than wait for more timeouts.
var ErrUnavailable = errors.New("llm: provider unavailable")

// errCallerGone marks a call that ended because the caller's context
// did, which the breaker must not count against the provider.
var errCallerGone = errors.New("caller gave up")

// Completer is what a stage needs from a model. *Client implements it;
// stage tests can use a fake.
type Completer interface {
	Name() string  // provider: "openai", "bedrock"
	Model() string // model id as the provider knows it
	Complete(ctx context.Context, req Request) (Response, error)
}

// Request is one structured completion.
type Request struct {
	// PromptVersion identifies the prompt that produced System and User
	// (Prompt.Version); it is part of the cache key.
	PromptVersion string
	System        string
	User          string
	// SchemaName names the structured output (a tool name on Bedrock, the
	// json_schema name on OpenAI): letters, digits, _ and -.
	SchemaName string
	// Schema is the JSON schema the answer must follow.
	Schema json.RawMessage
	// Validate checks an answer beyond what the model was asked; its
	// error text is shown to the model when asking for a correction.
	// Nil accepts any JSON value.
	Validate func(answer []byte) error
	// MaxTokens bounds the answer; 0 means Options.MaxTokens.
	MaxTokens int
}

// Response is a validated answer and what it cost.
type Response struct {
	Text         string // the JSON answer
	InputTokens  int64
	OutputTokens int64
	Latency      time.Duration
	CostUSD      float64
	Cached       bool // served from the cache: no call, no tokens
	Calls        int  // HTTP calls made, retries and repairs included
}

// Message is one turn of a conversation in a provider-neutral form.
type Message struct {
	Role string // "user" or "assistant"
	Text string
	// ToolID pairs an assistant's structured answer with the user turn
	// that comments on it (Bedrock's toolUse/toolResult ids).
	ToolID string
}

// Call is what a Backend sends in one request.
type Call struct {
	System     string
	Messages   []Message
	SchemaName string
	Schema     json.RawMessage
	MaxTokens  int
}

// Reply is what a Backend got back from one request.
type Reply struct {
	Text         string // the structured answer as JSON text
	ToolID       string
	InputTokens  int64
	OutputTokens int64
}

// Backend speaks one provider's wire protocol: one request, one reply.
// Errors worth retrying are reported as *StatusError (or are network
// errors and timeouts); Client does the rest.
type Backend interface {
	Name() string
	Model() string
	Send(ctx context.Context, c Call) (Reply, error)
}

// StatusError is an HTTP error from a provider.
type StatusError struct {
	Provider   string
	Status     int
	RetryAfter time.Duration // from the Retry-After header; 0 if none
	Throttled  bool          // 429 or a provider-specific throttling error
	Body       string        // start of the error body, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Provider, e.Status, e.Body)
}

// Temporary reports whether a later identical request may succeed.
func (e *StatusError) Temporary() bool { return e.Throttled || e.Status == 429 || e.Status >= 500 }

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Prices are USD per 1000 tokens.
type Prices struct {
	InputPer1K  float64
	OutputPer1K float64
}

// Cost of a call with these token counts.
func (p Prices) Cost(in, out int64) float64 {
	return float64(in)/1000*p.InputPer1K + float64(out)/1000*p.OutputPer1K
}

// Options tune a Client. Zero values take the defaults named.
type Options struct {
	Concurrency   int           // calls in flight; default 4
	RatePerSecond float64       // token bucket rate; 0 = unlimited
	Burst         int           // token bucket size; default max(1, Concurrency)
	Timeout       time.Duration // per HTTP call; default 60s
	Attempts      int           // tries per call for transient errors; default 4
	BackoffBase   time.Duration // first backoff ceiling; default 500ms
	BackoffMax    time.Duration // largest backoff ceiling; default 20s
	Repairs       int           // corrections asked for invalid output; default 2 (-1: none)
	MaxTokens     int           // default answer bound; default 2048
	// BreakerFailures consecutive failed calls open the breaker; default 5.
	BreakerFailures uint32
	// BreakerOpen is how long the breaker stays open before letting one
	// probe call through; default 30s.
	BreakerOpen time.Duration
	Prices      Prices
	Cache       *Cache   // nil: no cache
	Metrics     *Metrics // nil: not recorded
	Log         *slog.Logger
}

// Client adds validation, limits, retries, a circuit breaker, a cache
// and accounting to a Backend. It is safe for concurrent use.
type Client struct {
	b       Backend
	o       Options
	sem     chan struct{}
	limiter *rate.Limiter
	breaker *gobreaker.CircuitBreaker[Reply]
}

// New returns a Client for b.
func New(b Backend, o Options) *Client {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Burst <= 0 {
		o.Burst = o.Concurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 20 * time.Second
	}
	switch {
	case o.Repairs == 0:
		o.Repairs = 2
	case o.Repairs < 0:
		o.Repairs = 0
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 2048
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerOpen <= 0 {
		o.BreakerOpen = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	lim := rate.NewLimiter(rate.Inf, o.Burst)
	if o.RatePerSecond > 0 {
		lim = rate.NewLimiter(rate.Limit(o.RatePerSecond), o.Burst)
	}
	c := &Client{b: b, o: o, sem: make(chan struct{}, o.Concurrency), limiter: lim}
	c.breaker = gobreaker.NewCircuitBreaker[Reply](gobreaker.Settings{
		Name:        b.Name() + "/" + b.Model(),
		MaxRequests: 1,
		Timeout:     o.BreakerOpen,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= o.BreakerFailures },
		// The caller giving up says nothing about the provider.
		IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			o.Log.Warn("llm circuit breaker", "breaker", name, "from", from.String(), "to", to.String())
		},
	})
	return c
}

// Name implements Completer.
func (c *Client) Name() string { return c.b.Name() }

// Model implements Completer.
func (c *Client) Model() string { return c.b.Model() }

// Complete asks the model for a structured answer, serving it from the
// cache when this exact input was answered before with the same prompt.
func (c *Client) Complete(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	key := CacheKey(c.b.Name(), c.b.Model(), req.PromptVersion, req.User)
	if c.o.Cache != nil {
		text, ok, err := c.o.Cache.Get(ctx, key)
		if err != nil {
			// The cache saves money; it must not stop the pipeline.
			c.o.Log.Warn("llm cache read failed", "provider", c.b.Name(), "err", err)
		} else if ok {
			resp := Response{Text: text, Cached: true, Latency: time.Since(start)}
			c.o.Metrics.record(c.b.Name(), c.b.Model(), "cached", resp)
			return resp, nil
		}
	}

	resp, err := c.complete(ctx, req)
	resp.Latency = time.Since(start)
	resp.CostUSD = c.o.Prices.Cost(resp.InputTokens, resp.OutputTokens)
	outcome := "ok"
	switch {
	case errors.Is(err, ErrInvalidOutput):
		outcome = "invalid"
	case errors.Is(err, ErrUnavailable):
		outcome = "unavailable"
	case err != nil:
		outcome = "error"
	}
	c.o.Metrics.record(c.b.Name(), c.b.Model(), outcome, resp)
	if err != nil {
		return resp, err
	}
	if c.o.Cache != nil {
		if perr := c.o.Cache.Put(ctx, key, c.b.Name(), c.b.Model(), req.PromptVersion, resp); perr != nil {
			c.o.Log.Warn("llm cache write failed", "provider", c.b.Name(), "err", perr)
		}
	}
	return resp, nil
}

// complete runs the conversation: ask, validate, and on an invalid
// answer show the model its error and ask again.
func (c *Client) complete(ctx context.Context, req Request) (Response, error) {
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = c.o.MaxTokens
	}
	call := Call{System: req.System, SchemaName: req.SchemaName, Schema: req.Schema, MaxTokens: maxTokens,
		Messages: []Message{{Role: "user", Text: req.User}}}
	var resp Response
	var lastErr error
	for repair := 0; repair <= c.o.Repairs; repair++ {
		reply, calls, err := c.send(ctx, call)
		resp.Calls += calls
		resp.InputTokens += reply.InputTokens
		resp.OutputTokens += reply.OutputTokens
		if err != nil {
			return resp, err
		}
		verr := validate(reply.Text, req.Validate)
		if verr == nil {
			resp.Text = reply.Text
			return resp, nil
		}
		lastErr = verr
		c.o.Log.Debug("llm answer invalid, asking for a correction", "provider", c.b.Name(), "err", verr)
		call.Messages = append(call.Messages,
			Message{Role: "assistant", Text: reply.Text, ToolID: reply.ToolID},
			Message{Role: "user", ToolID: reply.ToolID, Text: "Your answer is not valid: " + verr.Error() +
				"\nAnswer again with JSON that follows the schema exactly, and nothing else."})
	}
	return resp, fmt.Errorf("%w from %s/%s after %d corrections: %w", ErrInvalidOutput, c.b.Name(), c.b.Model(), c.o.Repairs, lastErr)
}

func validate(text string, check func([]byte) error) error {
	if !json.Valid([]byte(text)) {
		return errors.New("the answer is not well-formed JSON")
	}
	if check != nil {
		return check([]byte(text))
	}
	return nil
}

// send makes one logical request through the breaker, retrying
// transient failures. It returns the number of HTTP calls made.
func (c *Client) send(ctx context.Context, call Call) (Reply, int, error) {
	calls := 0
	reply, err := c.breaker.Execute(func() (Reply, error) {
		for attempt := 1; ; attempt++ {
			calls++
			r, err := c.attempt(ctx, func(actx context.Context) (Reply, error) { return c.b.Send(actx, call) })
			if err != nil && ctx.Err() != nil {
				return r, fmt.Errorf("%w: %w", errCallerGone, err)
			}
			if err == nil || attempt >= c.o.Attempts || !transient(ctx, err) {
				return r, err
			}
			if err := c.pause(ctx, attempt, err, "llm call failed, retrying"); err != nil {
				return Reply{}, err
			}
		}
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return Reply{}, calls, fmt.Errorf("%w: %s/%s: %w", ErrUnavailable, c.b.Name(), c.b.Model(), err)
	}
	if err != nil {
		return reply, calls, fmt.Errorf("llm %s/%s: %w", c.b.Name(), c.b.Model(), err)
	}
	return reply, calls, nil
}

// attempt makes one call with do under the concurrency and rate limits
// and the per-call timeout, which for a stream bounds the whole answer.
func (c *Client) attempt(ctx context.Context, do func(context.Context) (Reply, error)) (Reply, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
	defer func() { <-c.sem }()
	if err := c.limiter.Wait(ctx); err != nil {
		return Reply{}, fmt.Errorf("rate limit: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	return do(actx)
}

// pause waits out the backoff after failed attempt (err its failure),
// logging msg. It returns an error when ctx ends first.
func (c *Client) pause(ctx context.Context, attempt int, err error, msg string) error {
	wait := c.backoff(attempt, err)
	c.o.Log.Debug(msg, "provider", c.b.Name(), "attempt", attempt, "wait", wait, "err", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errCallerGone, ctx.Err())
	case <-t.C:
		return nil
	}
}

// transient reports whether err is worth another try: throttling, a
// server error, a timeout of this call (not of the caller's context) or a
// broken connection.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if se, ok := errors.AsType[*StatusError](err); ok {
		return se.Temporary()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return false
}

// backoff is exponential with full jitter (a random wait up to a ceiling
// that doubles per attempt), but never shorter than Retry-After.
func (c *Client) backoff(attempt int, err error) time.Duration {
	ceil := c.o.BackoffBase << (attempt - 1)
	if ceil > c.o.BackoffMax || ceil <= 0 {
		ceil = c.o.BackoffMax
	}
	wait := rand.N(ceil + 1)
	if se, ok := errors.AsType[*StatusError](err); ok && se.RetryAfter > wait {
		wait = se.RetryAfter
	}
	return wait
}

// CacheKey is sha256 over the length-prefixed provider, model, prompt
// version and input, so that no two different tuples share a key.
func CacheKey(provider, model, promptVersion, input string) []byte {
	h := sha256.New()
	for _, s := range []string{provider, model, promptVersion, input} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return h.Sum(nil)
}
