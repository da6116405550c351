package classify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"prismflow/schemas/events"
	"prismflow/stages/internal/llm"
)

// chatServer is an OpenAI-compatible chat-completions server whose
// answer function returns the assistant's content, or writes an error
// and returns false.
type chatServer struct {
	srv   *httptest.Server
	calls atomic.Int32
	user  atomic.Value // last user message
}

func newChatServer(t *testing.T, answer func(w http.ResponseWriter) (string, bool)) *chatServer {
	t.Helper()
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
		s.user.Store(req.Messages[1].Content)
		content, ok := answer(w)
		if !ok {
			return
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

// fleetRequest is a fleet request the built-in model files under Flotta
// Auto. Its partita IVA has no label (the built-in extraction wants
// one) and its city is not part of a full address (the built-in
// extraction wants street, CAP and province), so only the LLM can
// report them.
var fleetRequest = events.SectionsAnalyzed{
	Document: events.Document{ID: "doc-1", Filename: "richiesta.eml", Subject: "Preventivo flotta aziendale",
		Sender: "ufficio@autotrasporti.example"},
	PageCount: 1,
	Sections: []events.Section{{Index: 0, Title: "Messaggio", PageStart: 1, PageEnd: 1, Text: "Buongiorno,\n" +
		"chiediamo un preventivo RCA per la nostra flotta aziendale di furgoni con sede a Bergamo.\n" +
		"Targhe: AB123CD, EF456GH. Totale 2 veicoli.\n" +
		"Codice azienda 01234567897, riferimento interno RSSMRA80A01H501X.\nCordiali saluti"}},
}

func builtinOnly(t *testing.T, in events.SectionsAnalyzed, threshold float64) events.DocumentClassified {
	t.Helper()
	out, err := (&Classifier{ReviewThreshold: threshold}).Handle(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.LLM != nil || out.LLMCategory != "" || out.Disagreement {
		t.Fatalf("built-in classifier reports an LLM: %+v", out)
	}
	return out
}

func withLLM(t *testing.T, c llm.Completer, threshold float64) *Classifier {
	t.Helper()
	cl := &Classifier{ReviewThreshold: threshold}
	if err := cl.SetLLM(c, nil); err != nil {
		t.Fatal(err)
	}
	return cl
}

func answer(category string, confidence float64, fields ...string) string {
	var fs []map[string]string
	for i := 0; i+1 < len(fields); i += 2 {
		fs = append(fs, map[string]string{"name": fields[i], "value": fields[i+1]})
	}
	b, _ := json.Marshal(map[string]any{"category": category, "confidence": confidence, "fields": append(fs, []map[string]string{}...)})
	return string(b)
}

func TestLLMAgreementAndDisagreement(t *testing.T) {
	base := builtinOnly(t, fleetRequest, 0)
	if base.Category != "Flotta Auto" || base.Confidence < DefaultReviewThreshold {
		t.Fatalf("built-in model gives %s %.2f; the test needs a confident Flotta Auto", base.Category, base.Confidence)
	}
	other := "Fabbricato"
	// A threshold between the built-in confidence and 1 makes the
	// built-in model unsure and an LLM at confidence 1 sure.
	above := (base.Confidence + 1) / 2
	tests := []struct {
		name        string
		threshold   float64
		llmCategory string
		llmConf     float64
		wantCat     string
		wantConf    float64
		wantReview  bool
		wantDisagr  bool
		wantProv    string
	}{
		{"agreement", 0, "Flotta Auto", 0.7, "Flotta Auto", max(base.Confidence, 0.7), false, false, "openai/test-model, " + base.Provider},
		{"disagreement, built-in confident", 0, other, 0.99, "Flotta Auto", base.Confidence, true, true, base.Provider},
		{"disagreement, both unsure", above, other, 0.2, "Flotta Auto", base.Confidence, true, true, base.Provider},
		{"disagreement, only the LLM confident", above, other, 1, other, 1, true, true, "openai/test-model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newChatServer(t, func(http.ResponseWriter) (string, bool) { return answer(tt.llmCategory, tt.llmConf), true })
			out, err := withLLM(t, s.client(llm.Options{}), tt.threshold).Handle(t.Context(), fleetRequest)
			if err != nil {
				t.Fatal(err)
			}
			if out.Category != tt.wantCat || out.Confidence != tt.wantConf || out.NeedsReview != tt.wantReview ||
				out.Disagreement != tt.wantDisagr || out.Provider != tt.wantProv {
				t.Errorf("got %s %.3f review=%v disagreement=%v provider %q; want %s %.3f review=%v disagreement=%v provider %q",
					out.Category, out.Confidence, out.NeedsReview, out.Disagreement, out.Provider,
					tt.wantCat, tt.wantConf, tt.wantReview, tt.wantDisagr, tt.wantProv)
			}
			if out.BuiltinCategory != base.Category || out.BuiltinConfidence != base.Confidence ||
				out.LLMCategory != tt.llmCategory || out.LLMConfidence != tt.llmConf {
				t.Errorf("recorded built-in %s %.3f, LLM %s %.3f; want %s %.3f, %s %.3f", out.BuiltinCategory, out.BuiltinConfidence,
					out.LLMCategory, out.LLMConfidence, base.Category, base.Confidence, tt.llmCategory, tt.llmConf)
			}
			if u := out.LLM; u == nil || *u != (events.LLMUsage{Sections: 1, InputTokens: 50, OutputTokens: 20, LatencyMS: u.LatencyMS}) {
				t.Errorf("usage = %+v, want one answered call of 50+20 tokens", u)
			}
			user, _ := s.user.Load().(string)
			if !strings.Contains(user, "con sede a Bergamo") || !strings.Contains(user, "Preventivo flotta aziendale") {
				t.Errorf("prompt does not carry the document: %s", user)
			}
		})
	}
}

func TestLLMFallsBackToBuiltin(t *testing.T) {
	base := builtinOnly(t, fleetRequest, 0)
	check := func(t *testing.T, out events.DocumentClassified) {
		t.Helper()
		if want := base.Provider + " (fallback from openai/test-model)"; out.Provider != want {
			t.Errorf("provider = %q, want %q", out.Provider, want)
		}
		if out.Category != base.Category || out.Confidence != base.Confidence || out.NeedsReview != base.NeedsReview ||
			out.BuiltinCategory != base.Category || out.LLMCategory != "" || out.Disagreement {
			t.Errorf("got %+v, want the built-in result %s %.3f with no LLM answer", out, base.Category, base.Confidence)
		}
		if len(out.Fields) != len(base.Fields) {
			t.Errorf("fields = %+v, want the built-in ones %+v", out.Fields, base.Fields)
		}
		if out.LLM == nil || out.LLM.FallbackSections != 1 || out.LLM.Sections != 0 {
			t.Errorf("usage = %+v, want a fallback", out.LLM)
		}
	}

	t.Run("invalid output", func(t *testing.T) {
		s := newChatServer(t, func(http.ResponseWriter) (string, bool) { return answer("Vita", 0.9), true })
		out, err := withLLM(t, s.client(llm.Options{Repairs: 1}), 0).Handle(t.Context(), fleetRequest)
		if err != nil {
			t.Fatal(err)
		}
		check(t, out)
		if s.calls.Load() != 2 {
			t.Errorf("calls = %d, want an answer and one correction", s.calls.Load())
		}
		if out.LLM.InputTokens != 100 {
			t.Errorf("input tokens = %d, want both calls counted", out.LLM.InputTokens)
		}
	})

	t.Run("breaker open", func(t *testing.T) {
		s := newChatServer(t, func(w http.ResponseWriter) (string, bool) {
			http.Error(w, "down", http.StatusInternalServerError)
			return "", false
		})
		cl := withLLM(t, s.client(llm.Options{Attempts: 1, BreakerFailures: 1, BreakerOpen: time.Hour}), 0)
		// A provider failing before its breaker opens is an error the
		// runtime retries: the second opinion is not silently dropped.
		if _, err := cl.Handle(t.Context(), fleetRequest); err == nil {
			t.Fatal("a failing provider with a closed breaker gave no error")
		}
		out, err := cl.Handle(t.Context(), fleetRequest)
		if err != nil {
			t.Fatal(err)
		}
		check(t, out)
		if s.calls.Load() != 1 {
			t.Errorf("calls = %d, want none while the breaker is open", s.calls.Load())
		}
	})
}

func TestLLMFieldsValidatedAndLocated(t *testing.T) {
	base := builtinOnly(t, fleetRequest, 0)
	baseFields := fieldMap(base.Fields)
	for _, name := range []string{FieldPartitaIVA, FieldCitta, FieldCodiceFiscale} {
		if _, ok := baseFields[name]; ok {
			t.Fatalf("the built-in extraction finds %s; the test would not show the LLM's", name)
		}
	}
	if baseFields[FieldTarghe].Value != "AB123CD,EF456GH" {
		t.Fatalf("built-in targhe = %+v", baseFields[FieldTarghe])
	}
	text := fleetRequest.Sections[0].Text
	runeSpan := func(s string) (int32, int32) {
		i := strings.Index(text, s)
		if i < 0 {
			t.Fatalf("%q not in the text", s)
		}
		start := int32(len([]rune(text[:i])))
		return start, start + int32(len([]rune(s)))
	}

	s := newChatServer(t, func(http.ResponseWriter) (string, bool) {
		return answer("Flotta Auto", 0.9,
			FieldPartitaIVA, "IT 01234567897", // valid check digit, in the text: kept, normalised
			FieldCodiceFiscale, "RSSMRA80A01H501X", // in the text, bad check character: dropped
			FieldCitta, "Bergamo", // in the text: kept with its span
			FieldProvincia, "BS", // a real province, not in the text: dropped
			FieldTelefono, "02 9876543", // not in the text: dropped
			FieldTarghe, "ZZ999ZZ", // the built-in value wins
			FieldDecorrenza, "31/02/2027", // not a date: dropped
			FieldMassimale, "1000000", // RC Professionale only: dropped in a fleet
			"colore", "rosso", // not a field: dropped
		), true
	})
	out, err := withLLM(t, s.client(llm.Options{}), 0).Handle(t.Context(), fleetRequest)
	if err != nil {
		t.Fatal(err)
	}
	got := fieldMap(out.Fields)
	pStart, pEnd := runeSpan("01234567897")
	cStart, cEnd := runeSpan("Bergamo")
	want := map[string]events.Field{
		FieldPartitaIVA: {Name: FieldPartitaIVA, Value: "01234567897", Page: 1, SectionIndex: 0, Start: pStart, End: pEnd},
		FieldCitta:      {Name: FieldCitta, Value: "Bergamo", Page: 1, SectionIndex: 0, Start: cStart, End: cEnd},
	}
	for name, f := range baseFields {
		want[name] = f
	}
	if len(got) != len(want) || len(out.Fields) != len(want) {
		t.Errorf("fields = %+v, want %+v", out.Fields, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("field %s = %+v, want %+v", name, got[name], w)
		}
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		builtin, llmCat        string
		builtinConf, llmConf   float64
		wantCat                string
		wantConf               float64
		wantFromLLM, wantDisag bool
	}{
		{"A", "A", 0.4, 0.8, "A", 0.8, false, false},
		{"A", "B", 0.9, 0.9, "A", 0.9, false, true},
		{"A", "B", 0.5, 0.6, "B", 0.6, true, true}, // at the threshold counts as confident
		{"A", "B", 0.5, 0.59, "A", 0.5, false, true},
		{"A", "B", 0.6, 0.99, "A", 0.6, false, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%.2f-%s%.2f", tt.builtin, tt.builtinConf, tt.llmCat, tt.llmConf), func(t *testing.T) {
			cat, conf, fromLLM, dis := decide(tt.builtin, tt.builtinConf, tt.llmCat, tt.llmConf, 0.6)
			if cat != tt.wantCat || conf != tt.wantConf || fromLLM != tt.wantFromLLM || dis != tt.wantDisag {
				t.Errorf("decide = %s %.2f fromLLM=%v disagree=%v, want %s %.2f %v %v", cat, conf, fromLLM, dis,
					tt.wantCat, tt.wantConf, tt.wantFromLLM, tt.wantDisag)
			}
		})
	}
}
