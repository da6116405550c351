package llm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"text/template"
)

// Prompt is a versioned prompt template. The file defines two templates,
// "system" and "user"; Version is the first 12 hex digits of the sha256
// of the file, so any edit to the prompt gives it a new version (and new
// cache keys) without anyone remembering to bump a number.
type Prompt struct {
	Name    string
	Version string
	tmpl    *template.Template
}

// LoadPrompt reads and parses the template file name from fsys.
func LoadPrompt(fsys fs.FS, name string) (*Prompt, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("llm prompt %s: %w", name, err)
	}
	return ParsePrompt(name, string(b))
}

// ParsePrompt parses a prompt template's text.
func ParsePrompt(name, text string) (*Prompt, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("llm prompt %s: %w", name, err)
	}
	for _, part := range []string{"system", "user"} {
		if t.Lookup(part) == nil {
			return nil, fmt.Errorf("llm prompt %s: no {{define %q}} template", name, part)
		}
	}
	sum := sha256.Sum256([]byte(text))
	return &Prompt{Name: name, Version: hex.EncodeToString(sum[:6]), tmpl: t}, nil
}

// Render executes the system and user templates with data.
func (p *Prompt) Render(data any) (system, user string, err error) {
	var s, u strings.Builder
	if err := p.tmpl.ExecuteTemplate(&s, "system", data); err != nil {
		return "", "", fmt.Errorf("llm prompt %s: system: %w", p.Name, err)
	}
	if err := p.tmpl.ExecuteTemplate(&u, "user", data); err != nil {
		return "", "", fmt.Errorf("llm prompt %s: user: %w", p.Name, err)
	}
	return strings.TrimSpace(s.String()), strings.TrimSpace(u.String()), nil
}
