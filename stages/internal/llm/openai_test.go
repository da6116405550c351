package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testSchema and validAnswer are a small structured output used by the
// client tests: {"answer": "<non-empty string>"}.
var testSchema = json.RawMessage(`{"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"],"additionalProperties":false}`)

func validateAnswer(b []byte) error {
	var v struct {
		Answer *string `json:"answer"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("does not match the schema: %v", err)
	}
	if v.Answer == nil || *v.Answer == "" {
		return errors.New(`"answer" is required and must not be empty`)
	}
	return nil
}

func testRequest(input string) Request {
	return Request{PromptVersion: "v1", System: "You answer.", User: input, SchemaName: "answer",
		Schema: testSchema, Validate: validateAnswer}
}

// chatRequest is what the fake server decodes from a chat-completions call.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens      int `json:"max_tokens"`
	ResponseFormat struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
}

// fakeOpenAI is a chat-completions server whose n-th answer (from 1) is
// decided by the test.
type fakeOpenAI struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter, r *http.Request, req chatRequest)

	mu       sync.Mutex
	requests []chatRequest
	headers  []http.Header
	calls    atomic.Int32
}

func newFakeOpenAI(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request, req chatRequest)) *fakeOpenAI {
	f := &fakeOpenAI{t: t, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var req chatRequest
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		n := int(f.calls.Add(1))
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		f.answer(n, w, r, req)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOpenAI) request(i int) chatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.requests) {
		f.t.Fatalf("request %d was not made (%d made)", i, len(f.requests))
	}
	return f.requests[i]
}

func (f *fakeOpenAI) backend() *OpenAI {
	return &OpenAI{BaseURL: f.srv.URL + "/v1", ModelID: "test-model", APIKey: "sk-test", HTTP: f.srv.Client()}
}

func writeChat(w http.ResponseWriter, content string, in, out int) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": content}}},
		"usage": map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out},
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"error"}}`, msg)
}

// fast keeps retry waits short so that tests of retries run quickly; the
// waits asked by Retry-After are still honoured.
func fast(o Options) Options {
	o.BackoffBase, o.BackoffMax = time.Millisecond, 5*time.Millisecond
	return o
}

func TestOpenAISuccessTokensAndCost(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeChat(w, `{"answer":"42"}`, 1200, 300)
	})
	reg := prometheus.NewRegistry()
	c := New(f.backend(), Options{Prices: Prices{InputPer1K: 0.5, OutputPer1K: 2}, Metrics: NewMetrics(reg)})
	resp, err := c.Complete(t.Context(), testRequest("question"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != `{"answer":"42"}` || resp.InputTokens != 1200 || resp.OutputTokens != 300 || resp.Calls != 1 || resp.Cached {
		t.Fatalf("response = %+v", resp)
	}
	if want := 1.2*0.5 + 0.3*2; math.Abs(resp.CostUSD-want) > 1e-9 {
		t.Errorf("cost = %v, want %v", resp.CostUSD, want)
	}
	req := f.request(0)
	if req.Model != "test-model" || req.ResponseFormat.Type != "json_schema" || req.ResponseFormat.JSONSchema.Name != "answer" ||
		string(req.ResponseFormat.JSONSchema.Schema) != string(testSchema) {
		t.Errorf("request = %+v", req)
	}
	if len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.Messages[1].Content != "question" {
		t.Errorf("messages = %+v", req.Messages)
	}
	if got := f.headers[0].Get("Authorization"); got != "Bearer sk-test" {
		t.Errorf("Authorization = %q", got)
	}
	if got := testutil.ToFloat64(c.o.Metrics.tokens.WithLabelValues("openai", "test-model", "input")); got != 1200 {
		t.Errorf("input tokens metric = %v", got)
	}
	if got := testutil.ToFloat64(c.o.Metrics.calls.WithLabelValues("openai", "test-model", "ok")); got != 1 {
		t.Errorf("ok calls metric = %v", got)
	}
	if got := testutil.ToFloat64(c.o.Metrics.cost.WithLabelValues("openai", "test-model")); math.Abs(got-resp.CostUSD) > 1e-9 {
		t.Errorf("cost metric = %v", got)
	}
}

func TestOpenAIRetries(t *testing.T) {
	tests := []struct {
		name     string
		fail     func(w http.ResponseWriter, r *http.Request) // answer of the first call
		opts     Options
		minWait  time.Duration
		wantCall int
	}{
		{"429 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "rate limited")
		}, fast(Options{}), time.Second, 2},
		{"500", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusInternalServerError, "boom")
		}, fast(Options{}), 0, 2},
		{"503", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "overloaded")
		}, fast(Options{}), 0, 2},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // hang until the client gives up
		}, fast(Options{Timeout: 200 * time.Millisecond}), 200 * time.Millisecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
				if n == 1 {
					tt.fail(w, r)
					return
				}
				writeChat(w, `{"answer":"ok"}`, 10, 2)
			})
			c := New(f.backend(), tt.opts)
			start := time.Now()
			resp, err := c.Complete(t.Context(), testRequest("q"))
			if err != nil {
				t.Fatal(err)
			}
			if elapsed := time.Since(start); elapsed < tt.minWait {
				t.Errorf("answered after %v, before the %v asked", elapsed, tt.minWait)
			}
			if resp.Calls != tt.wantCall || int(f.calls.Load()) != tt.wantCall {
				t.Errorf("calls = %d (server saw %d), want %d", resp.Calls, f.calls.Load(), tt.wantCall)
			}
		})
	}
}

func TestOpenAIGivesUpOnPermanentError(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeError(w, http.StatusUnauthorized, "bad key")
	})
	c := New(f.backend(), fast(Options{}))
	_, err := c.Complete(t.Context(), testRequest("q"))
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a 401 StatusError", err)
	}
	if f.calls.Load() != 1 {
		t.Errorf("a 401 was retried: %d calls", f.calls.Load())
	}
	if strings.Contains(err.Error(), "sk-test") {
		t.Errorf("error shows the API key: %v", err)
	}
}

func TestOpenAIRepairFeedsValidationError(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		switch n {
		case 1:
			writeChat(w, `{"answer": "unterminated`, 10, 5)
		case 2:
			writeChat(w, `{"answer": ""}`, 20, 5)
		default:
			writeChat(w, `{"answer":"fixed"}`, 30, 5)
		}
	})
	c := New(f.backend(), Options{})
	resp, err := c.Complete(t.Context(), testRequest("q"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != `{"answer":"fixed"}` || resp.Calls != 3 || resp.InputTokens != 60 || resp.OutputTokens != 15 {
		t.Fatalf("response = %+v", resp)
	}
	// The third request carries the whole conversation: both bad answers
	// and, after each, the reason it was refused.
	msgs := f.request(2).Messages
	if len(msgs) != 6 {
		t.Fatalf("third request has %d messages, want 6: %+v", len(msgs), msgs)
	}
	if msgs[2].Role != "assistant" || msgs[2].Content != `{"answer": "unterminated` ||
		msgs[3].Role != "user" || !strings.Contains(msgs[3].Content, "not well-formed JSON") {
		t.Errorf("first correction = %+v %+v", msgs[2], msgs[3])
	}
	if msgs[4].Role != "assistant" || msgs[5].Role != "user" || !strings.Contains(msgs[5].Content, `"answer" is required and must not be empty`) {
		t.Errorf("second correction = %+v %+v", msgs[4], msgs[5])
	}
}

func TestOpenAIPermanentlyInvalid(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeChat(w, `{"wrong":"field"}`, 10, 5)
	})
	reg := prometheus.NewRegistry()
	c := New(f.backend(), Options{Repairs: 1, Metrics: NewMetrics(reg)})
	resp, err := c.Complete(t.Context(), testRequest("q"))
	if !errors.Is(err, ErrInvalidOutput) {
		t.Fatalf("err = %v, want ErrInvalidOutput", err)
	}
	if f.calls.Load() != 2 || resp.InputTokens != 20 {
		t.Errorf("calls = %d, tokens = %d: want one answer and one correction, both billed", f.calls.Load(), resp.InputTokens)
	}
	if got := testutil.ToFloat64(c.o.Metrics.calls.WithLabelValues("openai", "test-model", "invalid")); got != 1 {
		t.Errorf("invalid calls metric = %v", got)
	}
}

func TestOpenAIJSONObjectFallback(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		if req.ResponseFormat.Type == "json_schema" {
			writeError(w, http.StatusBadRequest, "response_format json_schema is not supported")
			return
		}
		writeChat(w, "```json\n{\"answer\":\"yes\"}\n```", 10, 5)
	})
	c := New(f.backend(), Options{})
	for range 2 {
		resp, err := c.Complete(t.Context(), testRequest("q"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Text != `{"answer":"yes"}` {
			t.Fatalf("text = %q", resp.Text)
		}
	}
	// Refused once, then json_object for good: 1 + 1 + 1 calls.
	if f.calls.Load() != 3 {
		t.Errorf("calls = %d, want 3", f.calls.Load())
	}
	last := f.request(2)
	if last.ResponseFormat.Type != "json_object" || !strings.Contains(last.Messages[0].Content, `"additionalProperties":false`) {
		t.Errorf("json_object request should carry the schema in the system prompt: %+v", last)
	}
}

func TestBreakerOpensAndFailsFast(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeError(w, http.StatusBadGateway, "down")
	})
	reg := prometheus.NewRegistry()
	c := New(f.backend(), fast(Options{Attempts: 2, BreakerFailures: 3, BreakerOpen: time.Hour, Metrics: NewMetrics(reg)}))
	for i := range 3 {
		if _, err := c.Complete(t.Context(), testRequest("q")); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("call %d: err = %v, want the provider's error", i, err)
		}
	}
	if f.calls.Load() != 6 {
		t.Fatalf("server calls = %d, want 3 completions × 2 attempts", f.calls.Load())
	}
	start := time.Now()
	_, err := c.Complete(t.Context(), testRequest("q"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable once the breaker is open", err)
	}
	if f.calls.Load() != 6 {
		t.Errorf("an open breaker let a call through (%d calls)", f.calls.Load())
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("open breaker took %v to fail", d)
	}
	if got := testutil.ToFloat64(c.o.Metrics.calls.WithLabelValues("openai", "test-model", "unavailable")); got != 1 {
		t.Errorf("unavailable metric = %v", got)
	}
}

func TestBreakerProbesAfterOpenPeriod(t *testing.T) {
	var healthy atomic.Bool
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		if !healthy.Load() {
			writeError(w, http.StatusInternalServerError, "down")
			return
		}
		writeChat(w, `{"answer":"back"}`, 1, 1)
	})
	c := New(f.backend(), fast(Options{Attempts: 1, BreakerFailures: 1, BreakerOpen: 50 * time.Millisecond}))
	if _, err := c.Complete(t.Context(), testRequest("q")); err == nil {
		t.Fatal("want an error from a failing server")
	}
	healthy.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Complete(t.Context(), testRequest("q"))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("breaker never closed again: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestConcurrencyLimit(t *testing.T) {
	const limit, callers = 2, 6
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		now := inFlight.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		writeChat(w, `{"answer":"ok"}`, 1, 1)
	})
	c := New(f.backend(), Options{Concurrency: limit})
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			_, err := c.Complete(context.Background(), testRequest(fmt.Sprint("q", i)))
			errs <- err
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for inFlight.Load() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls in flight, want %d", inFlight.Load(), limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Give the other callers a chance to break the limit if they could.
	time.Sleep(100 * time.Millisecond)
	if got := inFlight.Load(); got != limit {
		t.Errorf("%d calls in flight, limit %d", got, limit)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if peak.Load() != limit || f.calls.Load() != callers {
		t.Errorf("peak = %d, calls = %d; want %d, %d", peak.Load(), f.calls.Load(), limit, callers)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeChat(w, `{"answer":"ok"}`, 1, 1)
	})
	c := New(f.backend(), Options{RatePerSecond: 20, Burst: 1})
	start := time.Now()
	for i := range 5 {
		if _, err := c.Complete(t.Context(), testRequest(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The first call takes the one token; four more need 4/20 s.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 calls at 20/s with burst 1 took %v, want ≥ 200ms", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBackoffFullJitterHonoursRetryAfter(t *testing.T) {
	c := New(&OpenAI{ModelID: "m"}, Options{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second})
	for attempt := 1; attempt <= 6; attempt++ {
		ceil := min(100*time.Millisecond<<(attempt-1), time.Second)
		for range 50 {
			if w := c.backoff(attempt, errors.New("x")); w < 0 || w > ceil {
				t.Fatalf("attempt %d: wait %v outside [0, %v]", attempt, w, ceil)
			}
		}
	}
	if w := c.backoff(1, &StatusError{Status: 429, RetryAfter: 7 * time.Second}); w != 7*time.Second {
		t.Errorf("wait = %v, want the 7s Retry-After", w)
	}
}

// A caller that gives up (a cancelled document) must not open the
// breaker: the provider did nothing wrong.
func TestCallerCancellationDoesNotTripBreaker(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		if hang.Load() {
			<-r.Context().Done()
			return
		}
		writeChat(w, `{"answer":"ok"}`, 1, 1)
	})
	c := New(f.backend(), fast(Options{BreakerFailures: 1, BreakerOpen: time.Hour}))
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := c.Complete(ctx, testRequest("q"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the caller's deadline", err)
		}
	}
	hang.Store(false)
	if _, err := c.Complete(t.Context(), testRequest("q")); err != nil {
		t.Fatalf("breaker opened on the caller's cancellations: %v", err)
	}
}
