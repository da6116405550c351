package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

type oaStreamRequest struct {
	Model         string          `json:"model"`
	Messages      []oaMessage     `json:"messages"`
	MaxTokens     int             `json:"max_tokens,omitempty"`
	Temperature   float64         `json:"temperature"`
	Stream        bool            `json:"stream"`
	StreamOptions oaStreamOptions `json:"stream_options"`
}

type oaStreamOptions struct {
	// IncludeUsage asks for a last chunk with the token counts; servers
	// that do not know it ignore it and the usage stays zero.
	IncludeUsage bool `json:"include_usage"`
}

// oaChunk is one server-sent event of a streamed chat completion.
type oaChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Stream implements Streamer with stream: true: the answer arrives as
// server-sent events, one JSON chunk per "data:" line, ended by
// "data: [DONE]".
func (o *OpenAI) Stream(ctx context.Context, c Call, emit func(string) error) (Reply, error) {
	req := oaStreamRequest{Model: o.ModelID, MaxTokens: c.MaxTokens, Stream: true, StreamOptions: oaStreamOptions{IncludeUsage: true}}
	if c.System != "" {
		req.Messages = append(req.Messages, oaMessage{Role: "system", Content: c.System})
	}
	for _, m := range c.Messages {
		req.Messages = append(req.Messages, oaMessage{Role: m.Role, Content: m.Text})
	}
	res, err := o.post(ctx, req, "text/event-stream")
	if err != nil {
		return Reply{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return Reply{}, oaStatusError(res, data)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "application/json" {
		return o.unstreamed(res.Body, emit)
	}
	return readSSE(res.Body, emit)
}

// readSSE reads the event stream of a chat completion.
func readSSE(body io.Reader, emit func(string) error) (Reply, error) {
	var r Reply
	var text strings.Builder
	var data bytes.Buffer
	finished := false
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	// dispatch handles one event: the data lines seen since the last
	// blank line.
	dispatch := func() (done bool, err error) {
		defer data.Reset()
		payload := bytes.TrimSpace(data.Bytes())
		if len(payload) == 0 {
			return false, nil
		}
		if string(payload) == "[DONE]" {
			return true, nil
		}
		var ch oaChunk
		if err := json.Unmarshal(payload, &ch); err != nil {
			return false, &StatusError{Provider: "openai", Status: http.StatusBadGateway, Body: "undecodable stream chunk: " + truncate(string(payload), 200)}
		}
		if ch.Error != nil {
			return false, &StatusError{Provider: "openai", Status: http.StatusBadGateway, Body: "error in stream: " + truncate(ch.Error.Message, 300)}
		}
		if ch.Usage != nil {
			r.InputTokens, r.OutputTokens = ch.Usage.PromptTokens, ch.Usage.CompletionTokens
		}
		for _, c := range ch.Choices {
			if c.FinishReason != nil && *c.FinishReason != "" {
				finished = true
			}
			if c.Delta.Content == "" {
				continue
			}
			if err := emit(c.Delta.Content); err != nil {
				return false, err
			}
			text.WriteString(c.Delta.Content)
		}
		return false, nil
	}
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			done, err := dispatch()
			if err != nil || done {
				r.Text = text.String()
				return r, err
			}
		case bytes.HasPrefix(line, []byte("data:")):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
		}
		// Comments (": keep-alive"), event: and id: lines carry nothing
		// a chat completion needs.
	}
	if err := sc.Err(); err != nil {
		r.Text = text.String()
		return r, fmt.Errorf("openai: read stream: %w", err)
	}
	// A stream that ends without a blank line still has its last event.
	done, err := dispatch()
	r.Text = text.String()
	if err != nil {
		return r, err
	}
	if !done && !finished {
		return r, &StatusError{Provider: "openai", Status: http.StatusBadGateway, Body: "stream ended before the answer did"}
	}
	return r, nil
}

// unstreamed handles a server that ignored stream: true and answered with
// one JSON completion: the whole text is one piece.
func (o *OpenAI) unstreamed(body io.Reader, emit func(string) error) (Reply, error) {
	data, err := io.ReadAll(io.LimitReader(body, 8<<20))
	if err != nil {
		return Reply{}, fmt.Errorf("openai: read response: %w", err)
	}
	var out oaResponse
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
		return Reply{}, &StatusError{Provider: "openai", Status: http.StatusBadGateway, Body: "undecodable response: " + truncate(string(data), 200)}
	}
	r := Reply{InputTokens: out.Usage.PromptTokens, OutputTokens: out.Usage.CompletionTokens}
	text := out.Choices[0].Message.Content
	if text == "" {
		text = out.Choices[0].Message.Refusal
	}
	if text != "" {
		if err := emit(text); err != nil {
			return r, err
		}
	}
	r.Text = text
	return r, nil
}
