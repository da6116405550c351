package topology

import (
	"strings"
	"testing"

	"prismflow/pipeline/config"
)

// classify.provider builds the LLM client at start, so a provider
// missing its settings fails there rather than at the first document.
func TestClassifyProvider(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		model    string
		wantErr  string
	}{
		{"rules", "rules", "", ""},
		{"openai", "openai", "test-model", ""},
		{"openai without a model", "openai", "", "llm.openai.model"},
		{"unknown", "gpt", "", "unknown classify provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load("", nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Classify.Provider, c.LLM.OpenAI.Model = tt.provider, tt.model
			stages, err := Stages(Deps{Config: c}, []string{"classify"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(stages) != 1 || stages[0].Name != "classify" {
				t.Fatalf("stages %+v, err %v; want the classify stage", stages, err)
			}
		})
	}
}
