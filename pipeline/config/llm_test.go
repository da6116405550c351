package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLLMSettings(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Analyze.Provider != "rules" || !c.LLM.Cache || c.LLM.Timeout != time.Minute || c.LLM.OpenAI.Limits.Concurrency != 4 ||
		c.LLM.Bedrock.Limits.PriceOutputPer1K != 0.00125 || c.LLM.OpenAI.BaseURL != "https://api.openai.com/v1" {
		t.Errorf("defaults = %+v", c.LLM)
	}
	t.Setenv("PRISMFLOW_ANALYZE_PROVIDER", "bedrock")
	t.Setenv("PRISMFLOW_LLM_BEDROCK_MODEL_ID", "eu.anthropic.claude-3-haiku")
	t.Setenv("PRISMFLOW_LLM_BEDROCK_RATE_PER_SECOND", "2.5")
	t.Setenv("PRISMFLOW_LLM_OPENAI_CONCURRENCY", "9")
	t.Setenv("PRISMFLOW_LLM_OPENAI_API_KEY", "sk-very-secret")
	if c, err = Load("", nil); err != nil {
		t.Fatal(err)
	}
	if c.Analyze.Provider != "bedrock" || c.LLM.Bedrock.ModelID != "eu.anthropic.claude-3-haiku" ||
		c.LLM.Bedrock.Limits.RatePerSecond != 2.5 || c.LLM.OpenAI.Limits.Concurrency != 9 || c.LLM.OpenAI.APIKey.Reveal() != "sk-very-secret" {
		t.Errorf("from the environment = %+v", c.LLM)
	}

	// The key never prints: not with fmt, not in a log line.
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("config", "llm", c.LLM, "key", c.LLM.OpenAI.APIKey)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), log.String()} {
		if strings.Contains(s, "sk-very-secret") {
			t.Errorf("API key printed: %s", s)
		}
	}

	t.Setenv("PRISMFLOW_ANALYZE_PROVIDER", "gpt")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "analyze.provider") {
		t.Errorf("unknown provider: err = %v", err)
	}
}
