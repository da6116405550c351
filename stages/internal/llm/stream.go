package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
)

// ErrNoStreaming means the provider's backend cannot stream text.
var ErrNoStreaming = errors.New("llm: provider does not stream")

// Streamer is a Backend that can also stream a free-text answer, piece by
// piece, as the model writes it.
type Streamer interface {
	Backend
	// Stream sends c (Schema and SchemaName unused) and passes each piece
	// of the answer to emit as it arrives. An error of emit stops the
	// stream and is returned as is. Reply.Text is the text emitted.
	Stream(ctx context.Context, c Call, emit func(delta string) error) (Reply, error)
}

// TextRequest is one free-text completion, such as a chat answer.
type TextRequest struct {
	System   string
	Messages []Message // user and assistant turns, the last one the user's
	// MaxTokens bounds the answer; 0 means Options.MaxTokens.
	MaxTokens int
}

// emitError marks an error returned by the caller's emit, so that it is
// passed back untouched and never retried or held against the provider.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// Stream asks the model for a free-text answer and passes it to emit as it
// is written. It keeps the Client's limits, breaker and accounting:
// transient failures are retried with backoff, but only while nothing
// has been emitted, since a retry would write the answer again; a
// provider failing after it started writing returns its error with the
// text so far in Response.Text. The error of emit is returned as is (it
// is the caller's, not the provider's), and once ctx is done emit is not
// called again. Answers are never cached.
func (c *Client) Stream(ctx context.Context, req TextRequest, emit func(delta string) error) (Response, error) {
	s, ok := c.b.(Streamer)
	if !ok {
		return Response{}, fmt.Errorf("%w: %s", ErrNoStreaming, c.b.Name())
	}
	start := time.Now()
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = c.o.MaxTokens
	}
	call := Call{System: req.System, Messages: req.Messages, MaxTokens: maxTokens}

	var text strings.Builder
	calls := 0
	reply, err := c.breaker.Execute(func() (Reply, error) {
		for attempt := 1; ; attempt++ {
			calls++
			r, err := c.attempt(ctx, func(actx context.Context) (Reply, error) {
				return s.Stream(actx, call, func(d string) error {
					// Pieces already read when the caller gave up are not
					// passed on: after a cancel, emit is never called.
					if err := ctx.Err(); err != nil {
						return err
					}
					if err := emit(d); err != nil {
						return &emitError{err}
					}
					text.WriteString(d)
					return nil
				})
			})
			if _, ok := errors.AsType[*emitError](err); ok {
				return r, fmt.Errorf("%w: %w", errCallerGone, err)
			}
			if err != nil && ctx.Err() != nil {
				return r, fmt.Errorf("%w: %w", errCallerGone, err)
			}
			if err == nil || text.Len() > 0 || attempt >= c.o.Attempts || !transient(ctx, err) {
				return r, err
			}
			if err := c.pause(ctx, attempt, err, "llm stream failed, retrying"); err != nil {
				return Reply{}, err
			}
		}
	})
	resp := Response{Text: text.String(), InputTokens: reply.InputTokens, OutputTokens: reply.OutputTokens,
		Calls: calls, Latency: time.Since(start)}
	resp.CostUSD = c.o.Prices.Cost(resp.InputTokens, resp.OutputTokens)
	outcome := "ok"
	switch {
	case errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
		outcome = "unavailable"
		err = fmt.Errorf("%w: %s/%s: %w", ErrUnavailable, c.b.Name(), c.b.Model(), err)
	case err != nil:
		outcome = "error"
	}
	c.o.Metrics.record(c.b.Name(), c.b.Model(), outcome, resp)
	if ee, ok := errors.AsType[*emitError](err); ok {
		return resp, ee.err
	}
	if err != nil {
		return resp, fmt.Errorf("llm %s/%s: %w", c.b.Name(), c.b.Model(), err)
	}
	return resp, nil
}
