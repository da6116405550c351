package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const bedrockModel = "anthropic.claude-3-haiku-20240307-v1:0"

// converseRequest is the part of a Converse request body the fake checks.
type converseRequest struct {
	System []struct {
		Text string `json:"text"`
	} `json:"system"`
	Messages []struct {
		Role    string           `json:"role"`
		Content []map[string]any `json:"content"`
	} `json:"messages"`
	InferenceConfig struct {
		MaxTokens int `json:"maxTokens"`
	} `json:"inferenceConfig"`
	ToolConfig struct {
		Tools []struct {
			ToolSpec struct {
				Name        string `json:"name"`
				InputSchema struct {
					JSON json.RawMessage `json:"json"`
				} `json:"inputSchema"`
			} `json:"toolSpec"`
		} `json:"tools"`
		ToolChoice struct {
			Tool struct {
				Name string `json:"name"`
			} `json:"tool"`
		} `json:"toolChoice"`
	} `json:"toolConfig"`
}

// fakeBedrock serves POST /model/{modelId}/converse like Bedrock does.
type fakeBedrock struct {
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter, r *http.Request, req converseRequest)

	mu       sync.Mutex
	requests []converseRequest
	auth     []string
	calls    atomic.Int32
}

func newFakeBedrock(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request, req converseRequest)) *fakeBedrock {
	f := &fakeBedrock{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/model/"+bedrockModel+"/converse" {
			w.Header().Set("X-Amzn-Errortype", "ResourceNotFoundException")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"no route %s"}`, r.URL.Path)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req converseRequest
		if err := json.Unmarshal(body, &req); err != nil {
			w.Header().Set("X-Amzn-Errortype", "ValidationException")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"message":%q}`, err.Error())
			return
		}
		n := int(f.calls.Add(1))
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		f.answer(n, w, r, req)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// backend builds the client the way production does (OpenBedrock, the
// standard credential chain) with credentials from the environment.
func (f *fakeBedrock) backend(t *testing.T) *Bedrock {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b, err := OpenBedrock(t.Context(), bedrockModel, "eu-central-1", f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeToolUse(w http.ResponseWriter, id string, input string, in, out int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"output":{"message":{"role":"assistant","content":[{"text":"Recording."},{"toolUse":{"toolUseId":%q,"name":"answer","input":%s}}]}},
		"stopReason":"tool_use","usage":{"inputTokens":%d,"outputTokens":%d,"totalTokens":%d},"metrics":{"latencyMs":12}}`, id, input, in, out, in+out)
}

func writeAWSError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, msg)
}

func TestBedrockConverse(t *testing.T) {
	f := newFakeBedrock(t, func(n int, w http.ResponseWriter, r *http.Request, req converseRequest) {
		writeToolUse(w, "tu-1", `{"answer":"42"}`, 2000, 100)
	})
	c := New(f.backend(t), Options{Prices: Prices{InputPer1K: 0.25, OutputPer1K: 1.25}})
	resp, err := c.Complete(t.Context(), testRequest("question"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(resp.Text), &got); err != nil || got["answer"] != "42" {
		t.Fatalf("text = %q (%v)", resp.Text, err)
	}
	if resp.InputTokens != 2000 || resp.OutputTokens != 100 || resp.CostUSD != 2*0.25+0.1*1.25 {
		t.Errorf("usage = %+v", resp)
	}
	req := f.requests[0]
	tc := req.ToolConfig
	if len(tc.Tools) != 1 || tc.Tools[0].ToolSpec.Name != "answer" || tc.ToolChoice.Tool.Name != "answer" {
		t.Errorf("toolConfig = %+v", tc)
	}
	var schema, want any
	json.Unmarshal(tc.Tools[0].ToolSpec.InputSchema.JSON, &schema)
	json.Unmarshal(testSchema, &want)
	if fmt.Sprint(schema) != fmt.Sprint(want) {
		t.Errorf("input schema = %s", tc.Tools[0].ToolSpec.InputSchema.JSON)
	}
	if len(req.System) != 1 || req.System[0].Text != "You answer." || len(req.Messages) != 1 || req.Messages[0].Content[0]["text"] != "question" {
		t.Errorf("request = %+v", req)
	}
	if req.InferenceConfig.MaxTokens != 2048 {
		t.Errorf("maxTokens = %d", req.InferenceConfig.MaxTokens)
	}
	if !strings.HasPrefix(f.auth[0], "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(f.auth[0], "/eu-central-1/bedrock/aws4_request") {
		t.Errorf("request not signed with the chain's credentials: %q", f.auth[0])
	}
}

func TestBedrockThrottlingAndServerErrors(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(w http.ResponseWriter)
		minWait time.Duration
	}{
		{"ThrottlingException with Retry-After", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeAWSError(w, http.StatusTooManyRequests, "ThrottlingException", "Too many requests, please wait before trying again.")
		}, time.Second},
		{"InternalServerException", func(w http.ResponseWriter) {
			writeAWSError(w, http.StatusInternalServerError, "InternalServerException", "internal")
		}, 0},
		{"ServiceUnavailableException", func(w http.ResponseWriter) {
			writeAWSError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "unavailable")
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeBedrock(t, func(n int, w http.ResponseWriter, r *http.Request, req converseRequest) {
				if n == 1 {
					tt.fail(w)
					return
				}
				writeToolUse(w, "tu-1", `{"answer":"ok"}`, 5, 5)
			})
			c := New(f.backend(t), fast(Options{}))
			start := time.Now()
			if _, err := c.Complete(t.Context(), testRequest("q")); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < tt.minWait {
				t.Errorf("retried after %v, before the %v asked", d, tt.minWait)
			}
			if f.calls.Load() != 2 {
				t.Errorf("calls = %d, want 2 (the SDK must not retry on its own)", f.calls.Load())
			}
		})
	}
}

func TestBedrockValidationErrorIsNotRetried(t *testing.T) {
	f := newFakeBedrock(t, func(n int, w http.ResponseWriter, r *http.Request, req converseRequest) {
		writeAWSError(w, http.StatusBadRequest, "ValidationException", "model does not support tool use")
	})
	c := New(f.backend(t), fast(Options{}))
	_, err := c.Complete(t.Context(), testRequest("q"))
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Status != http.StatusBadRequest || f.calls.Load() != 1 {
		t.Fatalf("err = %v after %d calls, want one 400", err, f.calls.Load())
	}
}

func TestBedrockTimeout(t *testing.T) {
	f := newFakeBedrock(t, func(n int, w http.ResponseWriter, r *http.Request, req converseRequest) {
		if n == 1 {
			<-r.Context().Done()
			return
		}
		writeToolUse(w, "tu-1", `{"answer":"ok"}`, 5, 5)
	})
	c := New(f.backend(t), fast(Options{Timeout: 200 * time.Millisecond}))
	if _, err := c.Complete(t.Context(), testRequest("q")); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", f.calls.Load())
	}
}

func TestBedrockRepairUsesToolResult(t *testing.T) {
	f := newFakeBedrock(t, func(n int, w http.ResponseWriter, r *http.Request, req converseRequest) {
		if n == 1 {
			writeToolUse(w, "tu-1", `{"answer":"","extra":1}`, 10, 5)
			return
		}
		writeToolUse(w, "tu-2", `{"answer":"fixed"}`, 20, 5)
	})
	c := New(f.backend(t), Options{})
	resp, err := c.Complete(t.Context(), testRequest("q"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Text, "fixed") || resp.Calls != 2 || resp.InputTokens != 30 {
		t.Fatalf("response = %+v", resp)
	}
	msgs := f.requests[1].Messages
	if len(msgs) != 3 {
		t.Fatalf("second request has %d messages, want 3", len(msgs))
	}
	use, _ := msgs[1].Content[0]["toolUse"].(map[string]any)
	if msgs[1].Role != "assistant" || use["toolUseId"] != "tu-1" || use["name"] != "answer" {
		t.Errorf("assistant turn = %+v", msgs[1])
	}
	res, _ := msgs[2].Content[0]["toolResult"].(map[string]any)
	content, _ := res["content"].([]any)
	if msgs[2].Role != "user" || res["toolUseId"] != "tu-1" || res["status"] != "error" || len(content) != 1 ||
		!strings.Contains(fmt.Sprint(content[0]), `unknown field \"extra\"`) && !strings.Contains(fmt.Sprint(content[0]), `unknown field "extra"`) {
		t.Errorf("tool result = %+v", msgs[2])
	}
}
