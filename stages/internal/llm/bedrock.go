package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
)

// Bedrock speaks the AWS Bedrock Converse API. Structured output is a
// tool whose input schema is the answer's schema, with toolChoice forcing
// the model to call it: the answer then arrives as a JSON document, and a
// correction is asked for with a toolResult of status error, which is how
// Converse models are trained to take feedback on a tool call.
type Bedrock struct {
	API     *bedrockruntime.Client
	ModelID string
}

// OpenBedrock builds a Bedrock backend with credentials from the standard
// AWS chain (environment, shared files, SSO, instance role). region may be
// empty to use the chain's; endpoint overrides the service URL (tests, VPC
// endpoints). The SDK's own retries are off: Client retries with the
// backoff, limits and breaker shared by every provider.
func OpenBedrock(ctx context.Context, modelID, region, endpoint string) (*Bedrock, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("bedrock: load AWS configuration: %w", err)
	}
	api := bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) {
		o.Retryer = aws.NopRetryer{}
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &Bedrock{API: api, ModelID: modelID}, nil
}

// Name implements Backend.
func (b *Bedrock) Name() string { return "bedrock" }

// Model implements Backend.
func (b *Bedrock) Model() string { return b.ModelID }

// Send implements Backend.
func (b *Bedrock) Send(ctx context.Context, c Call) (Reply, error) {
	var schema any
	if err := json.Unmarshal(c.Schema, &schema); err != nil {
		return Reply{}, fmt.Errorf("bedrock: schema of %s: %w", c.SchemaName, err)
	}
	in := &bedrockruntime.ConverseInput{
		ModelId:         aws.String(b.ModelID),
		System:          []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: c.System}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(c.MaxTokens)), Temperature: aws.Float32(0)},
		ToolConfig: &types.ToolConfiguration{
			Tools: []types.Tool{&types.ToolMemberToolSpec{Value: types.ToolSpecification{
				Name:        aws.String(c.SchemaName),
				Description: aws.String("Record the answer. Always call this tool with the complete answer."),
				InputSchema: &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(schema)},
			}}},
			ToolChoice: &types.ToolChoiceMemberTool{Value: types.SpecificToolChoice{Name: aws.String(c.SchemaName)}},
		},
	}
	for _, m := range c.Messages {
		msg, err := converseMessage(m, c.SchemaName)
		if err != nil {
			return Reply{}, err
		}
		in.Messages = append(in.Messages, msg)
	}
	out, err := b.API.Converse(ctx, in)
	if err != nil {
		return Reply{}, bedrockError(err)
	}
	var r Reply
	if out.Usage != nil {
		r.InputTokens = int64(aws.ToInt32(out.Usage.InputTokens))
		r.OutputTokens = int64(aws.ToInt32(out.Usage.OutputTokens))
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return r, &StatusError{Provider: "bedrock", Status: http.StatusBadGateway, Body: "response without a message"}
	}
	for _, block := range msg.Value.Content {
		switch bl := block.(type) {
		case *types.ContentBlockMemberToolUse:
			if aws.ToString(bl.Value.Name) != c.SchemaName || bl.Value.Input == nil {
				continue
			}
			data, err := bl.Value.Input.MarshalSmithyDocument()
			if err != nil {
				return r, fmt.Errorf("bedrock: tool input: %w", err)
			}
			r.Text, r.ToolID = string(data), aws.ToString(bl.Value.ToolUseId)
			return r, nil
		case *types.ContentBlockMemberText:
			// A model that ignored toolChoice and wrote JSON as text:
			// keep it, validation decides.
			if r.Text == "" {
				r.Text = stripFences(bl.Value)
			}
		}
	}
	return r, nil
}

// converseMessage maps a neutral turn: an assistant's structured answer
// becomes its toolUse block, the user's comment on it a toolResult.
func converseMessage(m Message, tool string) (types.Message, error) {
	switch {
	case m.Role == "assistant" && m.ToolID != "":
		var input any
		if err := json.Unmarshal([]byte(m.Text), &input); err != nil {
			// Cannot happen for a toolUse answer (a JSON document); keep
			// the conversation valid anyway.
			input = map[string]any{}
		}
		return types.Message{Role: types.ConversationRoleAssistant, Content: []types.ContentBlock{
			&types.ContentBlockMemberToolUse{Value: types.ToolUseBlock{
				ToolUseId: aws.String(m.ToolID), Name: aws.String(tool), Input: document.NewLazyDocument(input)}}}}, nil
	case m.Role == "user" && m.ToolID != "":
		return types.Message{Role: types.ConversationRoleUser, Content: []types.ContentBlock{
			&types.ContentBlockMemberToolResult{Value: types.ToolResultBlock{
				ToolUseId: aws.String(m.ToolID), Status: types.ToolResultStatusError,
				Content: []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: m.Text}}}}}}, nil
	case m.Role == "assistant":
		return types.Message{Role: types.ConversationRoleAssistant, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: m.Text}}}, nil
	case m.Role == "user":
		return types.Message{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: m.Text}}}, nil
	}
	return types.Message{}, fmt.Errorf("bedrock: unknown role %q", m.Role)
}

// bedrockError turns an SDK error into a *StatusError when the service
// answered, so that Client can tell throttling and outages from bad
// requests.
func bedrockError(err error) error {
	re, ok := errors.AsType[*awshttp.ResponseError](err)
	if !ok || re.HTTPStatusCode() == 0 { // no answer: a timeout or a broken connection
		return fmt.Errorf("bedrock: %w", err)
	}
	se := &StatusError{Provider: "bedrock", Status: re.HTTPStatusCode(), Body: err.Error()}
	if re.Response != nil {
		se.RetryAfter = parseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
	}
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		switch ae.ErrorCode() {
		case "ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException", "InternalServerException":
			se.Throttled = true
		}
	}
	return se
}
