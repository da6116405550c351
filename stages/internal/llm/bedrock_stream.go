package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// Stream implements Streamer with ConverseStream: the answer arrives as
// contentBlockDelta events of an AWS event stream, the token counts in
// the closing metadata event.
func (b *Bedrock) Stream(ctx context.Context, c Call, emit func(string) error) (Reply, error) {
	in := &bedrockruntime.ConverseStreamInput{
		ModelId:         aws.String(b.ModelID),
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(c.MaxTokens)), Temperature: aws.Float32(0)},
	}
	if c.System != "" {
		in.System = []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: c.System}}
	}
	for _, m := range c.Messages {
		msg, err := converseMessage(m, "")
		if err != nil {
			return Reply{}, err
		}
		in.Messages = append(in.Messages, msg)
	}
	out, err := b.API.ConverseStream(ctx, in)
	if err != nil {
		return Reply{}, bedrockError(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var r Reply
	var text strings.Builder
	stopped := false
	for ev := range stream.Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			d, ok := e.Value.Delta.(*types.ContentBlockDeltaMemberText)
			if !ok || d.Value == "" {
				continue
			}
			if err := emit(d.Value); err != nil {
				r.Text = text.String()
				return r, err
			}
			text.WriteString(d.Value)
		case *types.ConverseStreamOutputMemberMessageStop:
			stopped = true
		case *types.ConverseStreamOutputMemberMetadata:
			if u := e.Value.Usage; u != nil {
				r.InputTokens = int64(aws.ToInt32(u.InputTokens))
				r.OutputTokens = int64(aws.ToInt32(u.OutputTokens))
			}
		}
	}
	r.Text = text.String()
	if err := stream.Err(); err != nil {
		return r, bedrockStreamError(err)
	}
	if !stopped {
		return r, &StatusError{Provider: "bedrock", Status: http.StatusBadGateway, Body: "stream ended before the answer did"}
	}
	return r, nil
}

// bedrockStreamError classifies an error the service sent inside the
// event stream (after its 200 answer): throttling and service faults
// are worth retrying, the others not.
func bedrockStreamError(err error) error {
	if _, ok := errors.AsType[*types.ThrottlingException](err); ok {
		return &StatusError{Provider: "bedrock", Status: http.StatusTooManyRequests, Throttled: true, Body: err.Error()}
	}
	if _, ok := errors.AsType[*types.ValidationException](err); ok {
		return &StatusError{Provider: "bedrock", Status: http.StatusBadRequest, Body: err.Error()}
	}
	_, unavailable := errors.AsType[*types.ServiceUnavailableException](err)
	_, internal := errors.AsType[*types.InternalServerException](err)
	_, model := errors.AsType[*types.ModelStreamErrorException](err)
	if unavailable || internal || model {
		return &StatusError{Provider: "bedrock", Status: http.StatusServiceUnavailable, Throttled: true, Body: err.Error()}
	}
	return fmt.Errorf("bedrock: stream: %w", err)
}
