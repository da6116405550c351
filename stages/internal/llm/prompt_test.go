package llm

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestPromptVersionFollowsContent(t *testing.T) {
	const text = `{{define "system"}}Be brief.{{end}}{{define "user"}}Q: {{.Q}}{{end}}`
	fsys := fstest.MapFS{
		"a.tmpl": {Data: []byte(text)},
		"b.tmpl": {Data: []byte(text)},
		"c.tmpl": {Data: []byte(strings.Replace(text, "brief", "short", 1))},
	}
	load := func(name string) *Prompt {
		p, err := LoadPrompt(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := load("a.tmpl"), load("b.tmpl"), load("c.tmpl")
	if a.Version != b.Version || len(a.Version) != 12 {
		t.Errorf("same text, versions %q and %q", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Errorf("edited prompt kept version %q", a.Version)
	}
	sys, user, err := a.Render(map[string]string{"Q": "why?"})
	if err != nil || sys != "Be brief." || user != "Q: why?" {
		t.Errorf("Render = %q, %q, %v", sys, user, err)
	}
	if _, _, err := a.Render(map[string]string{}); err == nil {
		t.Error("a missing key must be an error, not <no value> sent to a model")
	}
}

func TestPromptNeedsSystemAndUser(t *testing.T) {
	for _, text := range []string{`{{define "system"}}x{{end}}`, `{{define "user"}}x{{end}}`, `{{define "system"}}x{{end`} {
		if _, err := ParsePrompt("p", text); err == nil {
			t.Errorf("ParsePrompt(%q) accepted", text)
		}
	}
}
