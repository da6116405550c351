//go:build chaos

package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// flakyLLM is a local OpenAI chat-completions endpoint that fails a set
// share of calls, evenly split between 429 (throttled), 500, a 200 whose
// body is not JSON (a proxy's error page) and a 200 whose answer is not
// JSON (a model off the rails); the other calls get a valid structured
// answer for the schema asked (analyze's "feedback", classify's
// "classification").
type flakyLLM struct {
	srv *httptest.Server

	mu      sync.Mutex
	rng     *rand.Rand
	failure float64
	f       llmFigures
}

// llmFigures count what the endpoint answered.
type llmFigures struct {
	calls, valid, throttled, failed, badBody, badAnswer int
}

func newFlakyLLM(t *testing.T, rng *rand.Rand, failure float64) *flakyLLM {
	l := &flakyLLM{rng: rng, failure: failure}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *flakyLLM) figures() llmFigures {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f
}

// draw picks the fate of one call: 0-3 a fault kind, 4 a valid answer.
func (l *flakyLLM) draw() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.calls++
	if l.rng.Float64() >= l.failure {
		l.f.valid++
		return 4
	}
	kind := l.rng.IntN(4)
	switch kind {
	case 0:
		l.f.throttled++
	case 1:
		l.f.failed++
	case 2:
		l.f.badBody++
	case 3:
		l.f.badAnswer++
	}
	return kind
}

func (l *flakyLLM) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req struct {
		ResponseFormat struct {
			Type       string `json:"type"`
			JSONSchema struct {
				Name string `json:"name"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	switch l.draw() {
	case 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests"}}`)
	case 1:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"The server had an error while processing your request","type":"server_error"}}`)
	case 2:
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	case 3:
		writeCompletion(w, `Sure! Here is the {"category": analysis you asked for`)
	default:
		switch req.ResponseFormat.JSONSchema.Name {
		case "classification":
			writeCompletion(w, `{"category":"Altro","confidence":0.55,"fields":[]}`)
		default:
			writeCompletion(w, `{"items":[]}`)
		}
	}
}

func writeCompletion(w http.ResponseWriter, content string) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-chaos", "object": "chat.completion", "model": "gpt-4o-mini",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": content}}},
		"usage": map[string]any{"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132},
	})
}
