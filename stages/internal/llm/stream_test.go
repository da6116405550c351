package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// streamRequest is the part of a streamed chat-completions request the
// fake checks.
type streamRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	ResponseFormat json.RawMessage `json:"response_format"`
}

// newFakeOpenAIStream serves POST /v1/chat/completions with the test's
// answer to the n-th call (from 1).
func newFakeOpenAIStream(t *testing.T, answer func(n int, w http.ResponseWriter, req streamRequest)) (*OpenAI, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var req streamRequest
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		answer(int(calls.Add(1)), w, req)
	}))
	t.Cleanup(srv.Close)
	return &OpenAI{BaseURL: srv.URL + "/v1", ModelID: "test-model", APIKey: "sk-test", HTTP: srv.Client()}, &calls
}

// writeSSE streams deltas as chat.completion.chunk events, then a usage
// chunk and [DONE], flushing after each event as a real server does.
func writeSSE(w http.ResponseWriter, deltas []string, in, out int) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	for i, d := range deltas {
		chunk := map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test-model",
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": d}, "finish_reason": nil}}}
		if i == 0 {
			chunk["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["role"] = "assistant"
		}
		b, _ := json.Marshal(chunk)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	fmt.Fprint(w, ": keep-alive\n\n")
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", in, out, in+out)
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func TestOpenAIStream(t *testing.T) {
	var got streamRequest
	b, _ := newFakeOpenAIStream(t, func(n int, w http.ResponseWriter, req streamRequest) {
		got = req
		writeSSE(w, []string{"La polizza ", "scade il ", "31/12/2026."}, 1200, 30)
	})
	reg := prometheus.NewRegistry()
	c := New(b, Options{Metrics: NewMetrics(reg), Prices: Prices{InputPer1K: 1, OutputPer1K: 2}})
	var pieces []string
	resp, err := c.Stream(t.Context(), TextRequest{System: "sys", Messages: []Message{{Role: "user", Text: "Quando scade?"}}},
		func(d string) error { pieces = append(pieces, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pieces, "|") != "La polizza |scade il |31/12/2026." || resp.Text != "La polizza scade il 31/12/2026." {
		t.Errorf("pieces %q, text %q", pieces, resp.Text)
	}
	if resp.InputTokens != 1200 || resp.OutputTokens != 30 || math.Abs(resp.CostUSD-(1.2+0.06)) > 1e-9 || resp.Calls != 1 {
		t.Errorf("response = %+v", resp)
	}
	if !got.Stream || !got.StreamOptions.IncludeUsage || got.ResponseFormat != nil || len(got.Messages) != 2 ||
		got.Messages[0].Role != "system" || got.Messages[1].Content != "Quando scade?" {
		t.Errorf("request = %+v", got)
	}
	if v := testutil.ToFloat64(NewMetrics(reg).tokens.WithLabelValues("openai", "test-model", "input")); v != 1200 {
		t.Errorf("input tokens metric = %v", v)
	}
	if v := testutil.ToFloat64(NewMetrics(reg).calls.WithLabelValues("openai", "test-model", "ok")); v != 1 {
		t.Errorf("ok calls metric = %v", v)
	}
}

func TestOpenAIStreamRetriesBeforeAnyText(t *testing.T) {
	b, calls := newFakeOpenAIStream(t, func(n int, w http.ResponseWriter, req streamRequest) {
		if n == 1 {
			writeError(w, http.StatusServiceUnavailable, "overloaded")
			return
		}
		writeSSE(w, []string{"ok"}, 5, 1)
	})
	c := New(b, fast(Options{}))
	resp, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil })
	if err != nil || resp.Text != "ok" || calls.Load() != 2 || resp.Calls != 2 {
		t.Fatalf("text %q, err %v, calls %d; want a retry then the answer", resp.Text, err, calls.Load())
	}
}

func TestOpenAIStreamDoesNotRetryAfterText(t *testing.T) {
	b, calls := newFakeOpenAIStream(t, func(n int, w http.ResponseWriter, req streamRequest) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"La polizza \"}}]}\n\n")
		// The connection ends with neither finish_reason nor [DONE].
	})
	c := New(b, fast(Options{}))
	var pieces []string
	resp, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}},
		func(d string) error { pieces = append(pieces, d); return nil })
	se, ok := errors.AsType[*StatusError](err)
	if !ok || !se.Temporary() || calls.Load() != 1 || resp.Text != "La polizza " || len(pieces) != 1 {
		t.Fatalf("err %v, calls %d, text %q: want the cut-off error after one call, the text so far kept", err, calls.Load(), resp.Text)
	}
}

func TestOpenAIStreamServerErrorsOpenBreaker(t *testing.T) {
	b, calls := newFakeOpenAIStream(t, func(n int, w http.ResponseWriter, req streamRequest) {
		writeError(w, http.StatusInternalServerError, "boom")
	})
	c := New(b, fast(Options{Attempts: 2, BreakerFailures: 2}))
	for i := range 2 {
		if _, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil }); err == nil {
			t.Fatalf("call %d: no error from a failing server", i)
		}
	}
	n := calls.Load()
	_, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil })
	if !errors.Is(err, ErrUnavailable) || calls.Load() != n {
		t.Fatalf("err = %v with %d more calls; want ErrUnavailable at once from the open breaker", err, calls.Load()-n)
	}
}

func TestOpenAIStreamEmitErrorStopsAndIsNotHeldAgainstProvider(t *testing.T) {
	b, calls := newFakeOpenAIStream(t, func(n int, w http.ResponseWriter, req streamRequest) {
		writeSSE(w, []string{"one", "two", "three"}, 5, 3)
	})
	c := New(b, fast(Options{BreakerFailures: 1}))
	gone := errors.New("browser gone")
	var pieces []string
	_, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(d string) error {
		pieces = append(pieces, d)
		return gone
	})
	if !errors.Is(err, gone) || len(pieces) != 1 || calls.Load() != 1 {
		t.Fatalf("err %v after %d pieces, %d calls; want the emit error after one piece", err, len(pieces), calls.Load())
	}
	// With BreakerFailures 1, a counted failure would have opened it.
	if _, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil }); err != nil {
		t.Fatalf("next call: %v (the caller's error tripped the breaker)", err)
	}
}

func TestOpenAIStreamServerIgnoringStream(t *testing.T) {
	b, _ := newFakeOpenAIStream(t, func(n int, w http.ResponseWriter, req streamRequest) {
		writeChat(w, "whole answer", 7, 2)
	})
	var pieces []string
	resp, err := New(b, Options{}).Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}},
		func(d string) error { pieces = append(pieces, d); return nil })
	if err != nil || resp.Text != "whole answer" || len(pieces) != 1 || resp.InputTokens != 7 {
		t.Fatalf("resp %+v, err %v, pieces %q", resp, err, pieces)
	}
}

func TestStreamNeedsAStreamer(t *testing.T) {
	_, err := New(nonStreaming{}, Options{}).Stream(t.Context(), TextRequest{}, func(string) error { return nil })
	if !errors.Is(err, ErrNoStreaming) {
		t.Fatalf("err = %v", err)
	}
}

type nonStreaming struct{}

func (nonStreaming) Name() string                                  { return "plain" }
func (nonStreaming) Model() string                                 { return "m" }
func (nonStreaming) Send(_ context.Context, _ Call) (Reply, error) { return Reply{}, nil }

// Bedrock's ConverseStream answers with an AWS event stream: binary
// frames with headers, encoded here with the SDK's own Encoder.

type bedrockStreamFake struct {
	srv   *httptest.Server
	calls atomic.Int32
	body  atomic.Value // last request body
}

func newFakeBedrockStream(t *testing.T, answer func(n int, w http.ResponseWriter)) *bedrockStreamFake {
	f := &bedrockStreamFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/model/"+bedrockModel+"/converse-stream" {
			writeAWSError(w, http.StatusNotFound, "ResourceNotFoundException", "no route "+r.URL.Path)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.body.Store(body)
		answer(int(f.calls.Add(1)), w)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *bedrockStreamFake) backend(t *testing.T) *Bedrock {
	fb := &fakeBedrock{srv: f.srv}
	return fb.backend(t)
}

// eventWriter writes event-stream frames to a response.
type eventWriter struct {
	w   http.ResponseWriter
	enc *eventstream.Encoder
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	return &eventWriter{w: w, enc: eventstream.NewEncoder()}
}

func (e *eventWriter) event(typ, payload string) {
	var buf bytes.Buffer
	msg := eventstream.Message{Payload: []byte(payload)}
	msg.Headers.Set(":message-type", eventstream.StringValue("event"))
	msg.Headers.Set(":event-type", eventstream.StringValue(typ))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	if err := e.enc.Encode(&buf, msg); err != nil {
		panic(err) // an encoder failure is a bug of the test
	}
	e.w.Write(buf.Bytes())
	e.w.(http.Flusher).Flush()
}

func (e *eventWriter) exception(typ, message string) {
	var buf bytes.Buffer
	msg := eventstream.Message{Payload: []byte(fmt.Sprintf(`{"message":%q}`, message))}
	msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
	msg.Headers.Set(":exception-type", eventstream.StringValue(typ))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	if err := e.enc.Encode(&buf, msg); err != nil {
		panic(err)
	}
	e.w.Write(buf.Bytes())
	e.w.(http.Flusher).Flush()
}

// converseStream writes a whole answer: start, deltas, stop, metadata.
func converseStream(w http.ResponseWriter, deltas []string, in, out int) {
	e := newEventWriter(w)
	e.event("messageStart", `{"role":"assistant"}`)
	for _, d := range deltas {
		b, _ := json.Marshal(map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": d}})
		e.event("contentBlockDelta", string(b))
	}
	e.event("contentBlockStop", `{"contentBlockIndex":0}`)
	e.event("messageStop", `{"stopReason":"end_turn"}`)
	e.event("metadata", fmt.Sprintf(`{"usage":{"inputTokens":%d,"outputTokens":%d,"totalTokens":%d},"metrics":{"latencyMs":42}}`, in, out, in+out))
}

func TestBedrockConverseStream(t *testing.T) {
	f := newFakeBedrockStream(t, func(n int, w http.ResponseWriter) {
		converseStream(w, []string{"Il massimale ", "è EUR 15.000.000."}, 900, 12)
	})
	reg := prometheus.NewRegistry()
	c := New(f.backend(t), Options{Metrics: NewMetrics(reg)})
	var pieces []string
	resp, err := c.Stream(t.Context(), TextRequest{System: "sys", Messages: []Message{{Role: "user", Text: "Massimale?"}}},
		func(d string) error { pieces = append(pieces, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pieces, "|") != "Il massimale |è EUR 15.000.000." || resp.InputTokens != 900 || resp.OutputTokens != 12 {
		t.Errorf("pieces %q, response %+v", pieces, resp)
	}
	var req converseRequest
	if err := json.Unmarshal(f.body.Load().([]byte), &req); err != nil {
		t.Fatal(err)
	}
	if len(req.System) != 1 || req.System[0].Text != "sys" || len(req.Messages) != 1 || req.Messages[0].Content[0]["text"] != "Massimale?" ||
		len(req.ToolConfig.Tools) != 0 {
		t.Errorf("request = %+v", req)
	}
	if v := testutil.ToFloat64(NewMetrics(reg).tokens.WithLabelValues("bedrock", bedrockModel, "output")); v != 12 {
		t.Errorf("output tokens metric = %v", v)
	}
}

func TestBedrockConverseStreamThrottledBeforeText(t *testing.T) {
	f := newFakeBedrockStream(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			e := newEventWriter(w)
			e.exception("throttlingException", "slow down")
			return
		}
		converseStream(w, []string{"ok"}, 1, 1)
	})
	c := New(f.backend(t), fast(Options{}))
	resp, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil })
	if err != nil || resp.Text != "ok" || f.calls.Load() != 2 {
		t.Fatalf("text %q, err %v, calls %d; want a retry after the in-stream throttling", resp.Text, err, f.calls.Load())
	}
}

func TestBedrockConverseStreamFailsMidAnswer(t *testing.T) {
	f := newFakeBedrockStream(t, func(n int, w http.ResponseWriter) {
		e := newEventWriter(w)
		e.event("messageStart", `{"role":"assistant"}`)
		e.event("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Il massimale "}}`)
		e.exception("modelStreamErrorException", "model failed")
	})
	c := New(f.backend(t), fast(Options{}))
	resp, err := c.Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil })
	if err == nil || resp.Text != "Il massimale " || f.calls.Load() != 1 {
		t.Fatalf("text %q, err %v, calls %d; want the error, the text so far, no retry", resp.Text, err, f.calls.Load())
	}
}

func TestBedrockConverseStreamHTTPError(t *testing.T) {
	f := newFakeBedrockStream(t, func(n int, w http.ResponseWriter) {
		writeAWSError(w, http.StatusBadRequest, "ValidationException", "bad model")
	})
	_, err := New(f.backend(t), fast(Options{})).Stream(t.Context(), TextRequest{Messages: []Message{{Role: "user", Text: "q"}}}, func(string) error { return nil })
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Status != http.StatusBadRequest || f.calls.Load() != 1 {
		t.Fatalf("err = %v after %d calls", err, f.calls.Load())
	}
}
