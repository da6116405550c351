package analyze

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"prismflow/schemas/events"
	"prismflow/stages/internal/llm"
)

// chatServer is an OpenAI-compatible chat-completions server; answer
// gets the user message (the rendered section) and returns the content.
type chatServer struct {
	srv   *httptest.Server
	calls atomic.Int32

	mu      sync.Mutex
	systems []string
	users   []string
}

func newChatServer(t *testing.T, answer func(user string, w http.ResponseWriter) (string, bool)) *chatServer {
	s := &chatServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Role, Content string } `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) < 2 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.calls.Add(1)
		s.mu.Lock()
		s.systems = append(s.systems, req.Messages[0].Content)
		s.users = append(s.users, req.Messages[1].Content)
		s.mu.Unlock()
		content, ok := answer(req.Messages[1].Content, w)
		if !ok {
			return // answer wrote an error
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": content}}},
			"usage":   map[string]any{"prompt_tokens": 50, "completion_tokens": 20},
		})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *chatServer) client(o llm.Options) *llm.Client {
	o.BackoffBase, o.BackoffMax = time.Millisecond, 2*time.Millisecond
	return llm.New(&llm.OpenAI{BaseURL: s.srv.URL + "/v1", ModelID: "test-model", HTTP: s.srv.Client()}, o)
}

var pinnedNow = func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }

func newTestLLM(t *testing.T, c llm.Completer) *LLM {
	t.Helper()
	p, err := NewLLM(c, &Rules{Now: pinnedNow}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Now = pinnedNow
	return p
}

const pastStart = "Il contraente chiede la copertura con decorrenza 01/03/2025 per la flotta."

func splitDoc(texts ...string) events.SectionsSplit {
	in := events.SectionsSplit{Document: events.Document{ID: "doc-1", Filename: "richiesta.pdf"}, Language: "it"}
	for i, text := range texts {
		in.Sections = append(in.Sections, events.Section{Index: int32(i), Title: "Sezione", Text: text})
	}
	return in
}

func TestLLMProviderItems(t *testing.T) {
	answer := `{"items":[
		{"type":"date_in_past","severity":"high","message":"La decorrenza è passata.","suggestion":"Chiedere la data corretta.","quote":"01/03/2025"},
		{"type":"other","severity":"low","message":"Invented.","suggestion":"","quote":"text that is not in the section"}]}`
	s := newChatServer(t, func(string, http.ResponseWriter) (string, bool) { return answer, true })
	a := &Analyzer{Provider: newTestLLM(t, s.client(llm.Options{Prices: llm.Prices{InputPer1K: 1, OutputPer1K: 10}}))}
	out, err := a.Handle(t.Context(), splitDoc(pastStart))
	if err != nil {
		t.Fatal(err)
	}
	if u := out.LLM; u == nil || u.Sections != 1 || u.FallbackSections != 0 || u.InputTokens != 50 || u.OutputTokens != 20 ||
		u.CostUSD < 0.2499 || u.CostUSD > 0.2501 {
		t.Errorf("usage = %+v, want 1 section, 50+20 tokens, $0.25", u)
	}
	if out.Provider != "openai/test-model" {
		t.Errorf("provider = %q", out.Provider)
	}
	want := events.FeedbackItem{ID: ItemID("doc-1", 0, "date_in_past", "01/03/2025"), Type: "date_in_past", Severity: events.SeverityHigh,
		Message: "La decorrenza è passata.", Suggestion: "Chiedere la data corretta.", Quote: "01/03/2025"}
	if len(out.Feedback) != 1 || out.Feedback[0] != want {
		t.Errorf("feedback = %+v, want only the item whose quote is in the text: %+v", out.Feedback, want)
	}
	if !strings.Contains(s.users[0], pastStart) || !strings.Contains(s.users[0], "Today: 2026-11-23") || !strings.Contains(s.systems[0], "Italian") {
		t.Errorf("prompt does not carry the section, the date and the language:\nsystem: %s\nuser: %s", s.systems[0], s.users[0])
	}
}

func TestLLMProviderFallsBackToRules(t *testing.T) {
	rulesOut, err := (&Analyzer{Provider: &Rules{Now: pinnedNow}}).Handle(t.Context(), splitDoc(pastStart))
	if err != nil {
		t.Fatal(err)
	}
	if rulesOut.LLM != nil {
		t.Errorf("rules provider reports LLM usage %+v", rulesOut.LLM)
	}
	if len(rulesOut.Feedback) == 0 {
		t.Fatal("the rules provider finds nothing in the test text; the test would prove nothing")
	}

	t.Run("invalid output", func(t *testing.T) {
		s := newChatServer(t, func(string, http.ResponseWriter) (string, bool) {
			return `{"items":[{"type":"x","severity":"critical","message":"m","suggestion":"","quote":"q"}]}`, true
		})
		out, err := (&Analyzer{Provider: newTestLLM(t, s.client(llm.Options{Repairs: 1}))}).Handle(t.Context(), splitDoc(pastStart))
		if err != nil {
			t.Fatal(err)
		}
		if out.Provider != "rules (fallback from openai/test-model)" {
			t.Errorf("provider = %q", out.Provider)
		}
		if !slices.Equal(out.Feedback, rulesOut.Feedback) {
			t.Errorf("feedback = %+v, want the rules' %+v", out.Feedback, rulesOut.Feedback)
		}
		if s.calls.Load() != 2 {
			t.Errorf("calls = %d, want an answer and one correction", s.calls.Load())
		}
		if u := out.LLM; u == nil || u.Sections != 0 || u.FallbackSections != 1 || u.InputTokens != 100 {
			t.Errorf("usage = %+v, want 1 fallback section and both calls' tokens", u)
		}
	})

	t.Run("breaker open", func(t *testing.T) {
		s := newChatServer(t, func(_ string, w http.ResponseWriter) (string, bool) {
			http.Error(w, `{"error":{"message":"down"}}`, http.StatusServiceUnavailable)
			return "", false
		})
		a := &Analyzer{Provider: newTestLLM(t, s.client(llm.Options{Attempts: 2, BreakerFailures: 1, BreakerOpen: time.Hour}))}
		// The failure that opens the breaker is an error: the runtime
		// retries the document rather than lowering its quality silently.
		if _, err := a.Handle(t.Context(), splitDoc(pastStart)); err == nil || errors.Is(err, llm.ErrUnavailable) {
			t.Fatalf("first document: err = %v, want the provider's error", err)
		}
		calls := s.calls.Load()
		out, err := a.Handle(t.Context(), splitDoc(pastStart))
		if err != nil {
			t.Fatal(err)
		}
		if out.Provider != "rules (fallback from openai/test-model)" || !slices.Equal(out.Feedback, rulesOut.Feedback) {
			t.Errorf("provider = %q, feedback = %+v", out.Provider, out.Feedback)
		}
		if s.calls.Load() != calls {
			t.Errorf("the open breaker let %d calls through", s.calls.Load()-calls)
		}
	})
}

func TestLLMProviderMarksMixedDocuments(t *testing.T) {
	s := newChatServer(t, func(user string, w http.ResponseWriter) (string, bool) {
		if strings.Contains(user, "decorrenza") {
			return `not json at all`, true
		}
		return `{"items":[]}`, true
	})
	a := &Analyzer{Provider: newTestLLM(t, s.client(llm.Options{Repairs: -1})), Concurrency: 2}
	out, err := a.Handle(t.Context(), splitDoc("Una sezione pulita.", pastStart, "Un'altra sezione pulita."))
	if err != nil {
		t.Fatal(err)
	}
	if want := "openai/test-model, rules (fallback from openai/test-model)"; out.Provider != want {
		t.Errorf("provider = %q, want %q", out.Provider, want)
	}
	if u := out.LLM; u == nil || u.Sections != 2 || u.FallbackSections != 1 {
		t.Errorf("usage = %+v, want 2 model sections and 1 fallback", u)
	}
	if len(out.Feedback) == 0 || out.Feedback[0].SectionIndex != 1 {
		t.Errorf("feedback = %+v, want the rules' items for section 1", out.Feedback)
	}
}

func TestDecodeAnswer(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{`{"items":[]}`, 0, ""},
		{`{"items":[{"type":"t","severity":"low","message":"m","suggestion":"","quote":"q"}]}`, 1, ""},
		{`{}`, 0, `missing required property "items"`},
		{`{"items":[],"note":"x"}`, 0, `unknown field "note"`},
		{`{"items":[{"type":"t","severity":"urgent","message":"m","suggestion":"","quote":"q"}]}`, 0, `items[0]: "severity" must be low, medium or high`},
		{`{"items":[{"type":"","severity":"low","message":"m","suggestion":"","quote":"q"}]}`, 0, `items[0]: empty "type"`},
		{`{"items":[{"type":"t","severity":"low","message":"m","suggestion":"","quote":""}]}`, 0, `items[0]: empty "quote"`},
		{`{"items":"none"}`, 0, "does not match the schema"},
		{`{"items":[]} {"items":[]}`, 0, "extra data"},
	}
	for _, tt := range tests {
		items, err := decodeAnswer([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("decodeAnswer(%s) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(items) != tt.want {
			t.Errorf("decodeAnswer(%s) = %d items, %v", tt.in, len(items), err)
		}
	}
}

func TestFeedbackSchemaMatchesDecoder(t *testing.T) {
	// The schema sent to the model and the Go validation must agree on
	// the fields, or the model is told one thing and judged by another.
	var schema struct {
		Properties struct {
			Items struct {
				Items struct {
					Properties map[string]any `json:"properties"`
					Required   []string       `json:"required"`
				} `json:"items"`
			} `json:"items"`
		} `json:"properties"`
	}
	b, err := prompts.ReadFile("prompts/feedback.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	item := schema.Properties.Items.Items
	var fields []string
	for k := range item.Properties {
		fields = append(fields, k)
	}
	slices.Sort(fields)
	required := slices.Sorted(slices.Values(item.Required))
	want := []string{"message", "quote", "severity", "suggestion", "type"}
	if !slices.Equal(fields, want) || !slices.Equal(required, want) {
		t.Errorf("schema fields %v, required %v; decoder expects %v", fields, required, want)
	}
}
