package config

import (
	"strings"
	"testing"
)

func TestClassifyProvider(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Classify.Provider != "rules" {
		t.Errorf("default classify.provider = %q, want rules", c.Classify.Provider)
	}
	t.Setenv("PRISMFLOW_CLASSIFY_PROVIDER", "openai")
	if c, err = Load("", nil); err != nil || c.Classify.Provider != "openai" {
		t.Errorf("from the environment: provider %q, err %v; want openai", c.Classify.Provider, err)
	}
	t.Setenv("PRISMFLOW_CLASSIFY_PROVIDER", "gpt")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "classify.provider") {
		t.Errorf("err = %v, want a classify.provider error", err)
	}
}
