package llm

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"prismflow/pipeline/config"
)

// Open builds the Client for provider ("openai" or "bedrock") from the
// configuration. pool may be nil (no cache); metrics may be nil.
func Open(ctx context.Context, provider string, c config.LLM, pool *pgxpool.Pool, metrics *Metrics, log *slog.Logger) (*Client, error) {
	var b Backend
	var lim config.LLMLimits
	switch provider {
	case "openai":
		if c.OpenAI.Model == "" || c.OpenAI.BaseURL == "" {
			return nil, fmt.Errorf("llm: openai needs llm.openai.base_url and llm.openai.model")
		}
		b = &OpenAI{BaseURL: c.OpenAI.BaseURL, ModelID: c.OpenAI.Model, APIKey: c.OpenAI.APIKey.Reveal(),
			JSONObject: c.OpenAI.JSONObject, HTTP: &http.Client{}}
		lim = c.OpenAI.Limits
	case "bedrock":
		if c.Bedrock.ModelID == "" {
			return nil, fmt.Errorf("llm: bedrock needs llm.bedrock.model_id")
		}
		br, err := OpenBedrock(ctx, c.Bedrock.ModelID, c.Bedrock.Region, c.Bedrock.Endpoint)
		if err != nil {
			return nil, err
		}
		b, lim = br, c.Bedrock.Limits
	default:
		return nil, fmt.Errorf("llm: unknown provider %q (providers: openai, bedrock)", provider)
	}
	o := Options{
		Concurrency:   lim.Concurrency,
		RatePerSecond: lim.RatePerSecond,
		Timeout:       c.Timeout,
		Attempts:      c.Attempts,
		Prices:        Prices{InputPer1K: lim.PriceInputPer1K, OutputPer1K: lim.PriceOutputPer1K},
		Metrics:       metrics,
		Log:           log,
	}
	if c.Cache && pool != nil {
		o.Cache = NewCache(pool)
	}
	return New(b, o), nil
}
