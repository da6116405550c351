package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// OpenAI speaks the chat-completions API that OpenAI, vLLM, Ollama and
// the llama.cpp server all serve. It is plain net/http: the subset used
// (one POST, a JSON body, usage counts) is small and stable, and the
// official SDK would add a large dependency to cover the differences
// between servers that only this subset survives.
type OpenAI struct {
	// BaseURL up to and including the version, e.g.
	// https://api.openai.com/v1 or http://localhost:11434/v1.
	BaseURL string
	ModelID string
	APIKey  string // sent as a bearer token; never logged
	HTTP    *http.Client
	// JSONObject asks for response_format json_object instead of
	// json_schema, for servers that lack the latter. The client also
	// switches to it by itself when a server refuses json_schema.
	JSONObject bool

	downgraded atomic.Bool
}

// Name implements Backend.
func (o *OpenAI) Name() string { return "openai" }

// Model implements Backend.
func (o *OpenAI) Model() string { return o.ModelID }

type oaMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type oaRequest struct {
	Model          string      `json:"model"`
	Messages       []oaMessage `json:"messages"`
	MaxTokens      int         `json:"max_tokens,omitempty"`
	Temperature    float64     `json:"temperature"`
	ResponseFormat any         `json:"response_format,omitempty"`
}

type oaResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
			Refusal string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// Send implements Backend.
func (o *OpenAI) Send(ctx context.Context, c Call) (Reply, error) {
	jsonObject := o.JSONObject || o.downgraded.Load()
	r, err := o.send(ctx, c, jsonObject)
	if se, ok := errors.AsType[*StatusError](err); ok && !jsonObject && se.Status == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(se.Body), "response_format") {
		// An older server that knows json_object but not json_schema:
		// remember, and ask again the way it understands.
		o.downgraded.Store(true)
		return o.send(ctx, c, true)
	}
	return r, err
}

func (o *OpenAI) send(ctx context.Context, c Call, jsonObject bool) (Reply, error) {
	req := oaRequest{Model: o.ModelID, MaxTokens: c.MaxTokens}
	system := c.System
	if jsonObject {
		// json_object only promises JSON; the schema must be in the prompt.
		req.ResponseFormat = map[string]string{"type": "json_object"}
		system += "\n\nAnswer with one JSON object that follows this JSON schema:\n" + string(c.Schema)
	} else {
		req.ResponseFormat = map[string]any{"type": "json_schema", "json_schema": map[string]any{
			"name": c.SchemaName, "schema": c.Schema}}
	}
	req.Messages = append(req.Messages, oaMessage{Role: "system", Content: system})
	for _, m := range c.Messages {
		req.Messages = append(req.Messages, oaMessage{Role: m.Role, Content: m.Text})
	}
	res, err := o.post(ctx, req, "")
	if err != nil {
		return Reply{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return Reply{}, fmt.Errorf("openai: read response: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return Reply{}, oaStatusError(res, data)
	}
	var out oaResponse
	if err := json.Unmarshal(data, &out); err != nil {
		// A proxy answering 200 with HTML is a server fault, not the model's.
		return Reply{}, &StatusError{Provider: "openai", Status: http.StatusBadGateway, Body: "undecodable response: " + truncate(string(data), 200)}
	}
	if len(out.Choices) == 0 {
		return Reply{}, &StatusError{Provider: "openai", Status: http.StatusBadGateway, Body: "response without choices"}
	}
	ch := out.Choices[0]
	text := ch.Message.Content
	if text == "" && ch.Message.Refusal != "" {
		text = ch.Message.Refusal // not JSON: validation reports it and asks again
	}
	return Reply{Text: stripFences(text), InputTokens: out.Usage.PromptTokens, OutputTokens: out.Usage.CompletionTokens}, nil
}

// stripFences removes a ```json fence some local models wrap JSON in.
func stripFences(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") {
		return s
	}
	t = strings.TrimPrefix(t, "```")
	t = strings.TrimPrefix(t, "json")
	t = strings.TrimSuffix(strings.TrimSpace(t), "```")
	return strings.TrimSpace(t)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// post sends req as JSON to the chat-completions endpoint, with accept as
// the Accept header when it is set. The caller closes the response body.
func (o *OpenAI) post(ctx context.Context, req any, accept string) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("openai: encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.BaseURL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if accept != "" {
		hr.Header.Set("Accept", accept)
	}
	if o.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	hc := o.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	return res, nil
}

// oaStatusError describes an answer other than 200 OK; body is what was
// read of it.
func oaStatusError(res *http.Response, body []byte) *StatusError {
	return &StatusError{Provider: "openai", Status: res.StatusCode, Throttled: res.StatusCode == http.StatusTooManyRequests,
		RetryAfter: parseRetryAfter(res.Header.Get("Retry-After"), time.Now()), Body: truncate(string(body), 300)}
}
