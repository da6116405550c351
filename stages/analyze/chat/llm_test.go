package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"prismflow/pipeline/config"
)

// The LLM answerer is tested through Open, the real llm clients and local
// servers that speak the providers' streaming APIs.

const bedrockModel = "anthropic.claude-3-haiku-20240307-v1:0"

// chatServer records the requests a fake provider received.
type chatServer struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies [][]byte
}

func (s *chatServer) body(t *testing.T, i int) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.bodies) {
		t.Fatalf("request %d not made (%d made)", i, len(s.bodies))
	}
	return s.bodies[i]
}

func (s *chatServer) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func newChatServer(t *testing.T, path string, answer func(n int, w http.ResponseWriter, r *http.Request)) *chatServer {
	s := &chatServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != path {
			http.Error(w, "no route "+r.URL.Path, http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		n := len(s.bodies)
		s.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// openAIStream answers with the text cut into deltas as server-sent
// events, then usage and [DONE].
func openAIStream(w http.ResponseWriter, deltas []string, in, out int) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, d := range deltas {
		b, _ := json.Marshal(map[string]any{"object": "chat.completion.chunk",
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": d}}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		w.(http.Flusher).Flush()
	}
	fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\n", in, out)
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func openAIConfig(s *chatServer) config.LLM {
	return config.LLM{OpenAI: config.OpenAI{BaseURL: s.srv.URL + "/v1", Model: "gpt-test", APIKey: "sk-test"},
		Timeout: time.Minute, Attempts: 2}
}

func openTest(t *testing.T, provider string, c config.LLM, reg prometheus.Registerer) Answerer {
	t.Helper()
	a, err := Open(t.Context(), provider, c, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func policyQuestion(t *testing.T) Question {
	return Question{Document: "doc-1", Language: "it", Text: "Quando scade la polizza attuale?",
		Sections: loadSections(t, "0001-message"),
		History:  []Turn{{Role: "question", Text: "Chi scrive?"}, {Role: "answer", Text: "Paola Ferrandi [S1]"}}}
}

func TestLLMStreamsAnAnswerWithCitations(t *testing.T) {
	// The marker and its quote arrive cut across chunks, as tokens do.
	deltas := []string{"La polizza attuale scade il 31/12/2026 ", "[S", "0] \"La polizza attuale ", "scade il 31/12/2026\"; ",
		"la nuova dovrebbe decorrere dal 01/01/2027 [S0] \"con decorrenza 01/01/2027\"."}
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		openAIStream(w, deltas, 800, 40)
	})
	reg := prometheus.NewRegistry()
	a := openTest(t, "openai", openAIConfig(s), reg)
	var pieces []string
	q := policyQuestion(t)
	ans, err := a.Answer(t.Context(), q, collect(&pieces))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pieces, "") != strings.Join(deltas, "") || len(pieces) != len(deltas) {
		t.Errorf("emitted %q, want the model's deltas as they came", pieces)
	}
	want := []Citation{{0, "La polizza attuale scade il 31/12/2026"}, {0, "con decorrenza 01/01/2027"}}
	if fmt.Sprint(ans.Citations) != fmt.Sprint(want) {
		t.Errorf("citations = %q, want %q", ans.Citations, want)
	}
	checkSpans(t, q.Sections, ans.Citations)
	if ans.Text != strings.Join(deltas, "") || ans.Grounding != GroundingLLM || ans.Provider != "openai" || ans.Model != "gpt-test" {
		t.Errorf("answer = %+v", ans)
	}

	// The grounded prompt: numbered sections, history, question, language.
	var req struct {
		Stream   bool `json:"stream"`
		Messages []struct{ Role, Content string }
	}
	if err := json.Unmarshal(s.body(t, 0), &req); err != nil {
		t.Fatal(err)
	}
	if !req.Stream || len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.Messages[1].Role != "user" {
		t.Fatalf("request = %+v", req)
	}
	sys, user := req.Messages[0].Content, req.Messages[1].Content
	for _, want := range []string{"[S<n>]", "Answer in Italian", "copied character for character"} {
		if !strings.Contains(sys, want) {
			t.Errorf("system prompt lacks %q:\n%s", want, sys)
		}
	}
	for _, want := range []string{"[S0] " + q.Sections[0].Title, q.Sections[0].Text, "[S1] Cordiali saluti (page 1)", q.Sections[1].Text,
		"Q: Chi scrive?", "A: Paola Ferrandi [S1]", "Question: Quando scade la polizza attuale?"} {
		if !strings.Contains(user, want) {
			t.Errorf("user prompt lacks %q:\n%s", want, user)
		}
	}
	if n := testutil.CollectAndCount(reg, "prismflow_llm_tokens_total"); n != 2 {
		t.Errorf("%d token series, want input and output", n)
	}
	if v := tokenCount(t, reg, "output"); v != 40 {
		t.Errorf("output tokens recorded = %v, want 40", v)
	}
}

func tokenCount(t *testing.T, g prometheus.Gatherer, direction string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "prismflow_llm_tokens_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

func TestLLMDropsInvalidCitations(t *testing.T) {
	text := `La polizza scade il 31/12/2026 [S0] "La polizza attuale scade il 31/12/2026", ` +
		`il massimale è di 5 milioni [S1] "Massimale: EUR 5.000.000" e la sezione [S9] "non esiste".`
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		openAIStream(w, []string{text}, 10, 10)
	})
	q := policyQuestion(t)
	ans, err := openTest(t, "openai", openAIConfig(s), nil).Answer(t.Context(), q, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Citations) != 1 || ans.Citations[0] != (Citation{0, "La polizza attuale scade il 31/12/2026"}) {
		t.Errorf("citations = %q, want only the exact one", ans.Citations)
	}
	if strings.Contains(ans.Text, "[S9]") || !strings.Contains(ans.Text, "[S1]") {
		t.Errorf("text = %q: want [S9] (no such section) removed, [S1] kept", ans.Text)
	}
}

func TestLLMFallsBackToRetrievalWhenTheProviderFails(t *testing.T) {
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"internal error","type":"server_error"}}`)
	})
	reg := prometheus.NewRegistry()
	q := policyQuestion(t)
	var pieces []string
	ans, err := openTest(t, "openai", openAIConfig(s), reg).Answer(t.Context(), q, collect(&pieces))
	if err != nil {
		t.Fatal(err)
	}
	if s.calls() != 2 {
		t.Errorf("%d calls, want 2 (config attempts)", s.calls())
	}
	if ans.Grounding != GroundingRetrieval || ans.Provider != "rules" || !strings.HasPrefix(ans.Text, textsFor("it").unavailable) {
		t.Errorf("answer = %+v; want retrieval labelled as standing in for the model", ans)
	}
	if len(ans.Citations) == 0 || !strings.Contains(ans.Citations[0].Quote, "La polizza attuale scade il 31/12/2026") {
		t.Errorf("citations = %q", ans.Citations)
	}
	checkSpans(t, q.Sections, ans.Citations)
	if strings.Join(pieces, "") != ans.Text {
		t.Errorf("emitted %q, answer %q", strings.Join(pieces, ""), ans.Text)
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "prismflow_llm_calls_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == "outcome" && l.GetValue() == "error"
				}
			}
		}
	}
	if !found {
		t.Error("the failed call is not in prismflow_llm_calls_total{outcome=error}")
	}
}

func TestLLMInterruptedMidAnswerKeepsTheText(t *testing.T) {
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"La polizza scade il 31/12/2026 [S0] \\\"La polizza attuale\\\"\"}}]}\n\n")
	})
	var pieces []string
	q := policyQuestion(t)
	ans, err := openTest(t, "openai", openAIConfig(s), nil).Answer(t.Context(), q, collect(&pieces))
	if err != nil {
		t.Fatal(err)
	}
	if s.calls() != 1 || ans.Grounding != GroundingLLM || !strings.HasSuffix(ans.Text, textsFor("it").interrupted) ||
		strings.Join(pieces, "") != ans.Text || len(ans.Citations) != 1 {
		t.Errorf("calls %d, answer %+v, emitted %q", s.calls(), ans, pieces)
	}
}

func TestLLMClientCancelStopsTheAnswer(t *testing.T) {
	disconnected := make(chan struct{})
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"parola%d \"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(disconnected)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var pieces []string
	afterCancel := 0
	_, err := openTest(t, "openai", openAIConfig(s), nil).Answer(ctx, policyQuestion(t), func(d string) error {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			afterCancel++
		}
		pieces = append(pieces, d)
		if len(pieces) == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if afterCancel > 0 || len(pieces) != 3 {
		t.Errorf("%d pieces, %d after the cancel; want exactly 3 and none after", len(pieces), afterCancel)
	}
	select {
	case <-disconnected:
	case <-time.After(60 * time.Second):
		t.Fatal("the provider's stream was not closed after the cancel")
	}
}

func TestLLMWithoutSectionsAsksNoModel(t *testing.T) {
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		openAIStream(w, []string{"a guess"}, 1, 1)
	})
	ans, err := openTest(t, "openai", openAIConfig(s), nil).Answer(t.Context(), Question{Text: "Qual è la targa?"}, func(string) error { return nil })
	if err != nil || s.calls() != 0 || ans.Grounding != GroundingRetrieval || ans.Text != textsFor("it").noMatch {
		t.Fatalf("answer %+v, err %v, %d model calls", ans, err, s.calls())
	}
}

func TestLLMEmitErrorStopsTheAnswer(t *testing.T) {
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		openAIStream(w, []string{"uno ", "due ", "tre"}, 1, 1)
	})
	gone := errors.New("browser gone")
	calls := 0
	_, err := openTest(t, "openai", openAIConfig(s), nil).Answer(t.Context(), policyQuestion(t), func(string) error {
		calls++
		return gone
	})
	if !errors.Is(err, gone) || calls != 1 || s.calls() != 1 {
		t.Fatalf("err %v after %d emits and %d provider calls; want the emit error at once, no fallback", err, calls, s.calls())
	}
}

// Bedrock's ConverseStream: an AWS event stream, encoded with the SDK's
// own encoder.

func bedrockEvent(w io.Writer, enc *eventstream.Encoder, messageType, typ, payload string) {
	var buf bytes.Buffer
	msg := eventstream.Message{Payload: []byte(payload)}
	msg.Headers.Set(":message-type", eventstream.StringValue(messageType))
	if messageType == "exception" {
		msg.Headers.Set(":exception-type", eventstream.StringValue(typ))
	} else {
		msg.Headers.Set(":event-type", eventstream.StringValue(typ))
	}
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	if err := enc.Encode(&buf, msg); err != nil {
		panic(err) // the test's own frames: a failure is a bug of the test
	}
	w.Write(buf.Bytes())
	w.(http.Flusher).Flush()
}

func bedrockConfig(t *testing.T, s *chatServer) config.LLM {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return config.LLM{Bedrock: config.Bedrock{ModelID: bedrockModel, Region: "eu-central-1", Endpoint: s.srv.URL},
		Timeout: time.Minute, Attempts: 2}
}

func TestBedrockStreamsAnAnswerWithCitations(t *testing.T) {
	deltas := []string{"Il massimale RCA richiesto è di 15 milioni di euro ", `[S0] "Massimale RCA richiesto: EUR 15.000.000 unico"`, ", con conducenti dipendenti [S0] \"patente C/CE\" [S4] \"nessuna\"."}
	s := newChatServer(t, "/model/"+bedrockModel+"/converse-stream", func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		enc := eventstream.NewEncoder()
		bedrockEvent(w, enc, "event", "messageStart", `{"role":"assistant"}`)
		for _, d := range deltas {
			b, _ := json.Marshal(map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": d}})
			bedrockEvent(w, enc, "event", "contentBlockDelta", string(b))
		}
		bedrockEvent(w, enc, "event", "contentBlockStop", `{"contentBlockIndex":0}`)
		bedrockEvent(w, enc, "event", "messageStop", `{"stopReason":"end_turn"}`)
		bedrockEvent(w, enc, "event", "metadata", `{"usage":{"inputTokens":700,"outputTokens":35,"totalTokens":735},"metrics":{"latencyMs":9}}`)
	})
	reg := prometheus.NewRegistry()
	a := openTest(t, "bedrock", bedrockConfig(t, s), reg)
	q := Question{Language: "it", Text: "Qual è il massimale RCA?", Sections: loadSections(t, "0001-attachment-1")}
	var pieces []string
	ans, err := a.Answer(t.Context(), q, collect(&pieces))
	if err != nil {
		t.Fatal(err)
	}
	want := []Citation{{0, "Massimale RCA richiesto: EUR 15.000.000 unico"}, {0, "patente C/CE"}}
	if fmt.Sprint(ans.Citations) != fmt.Sprint(want) || ans.Grounding != GroundingLLM || ans.Provider != "bedrock" || ans.Model != bedrockModel {
		t.Errorf("answer = %+v", ans)
	}
	if strings.Join(pieces, "") != strings.Join(deltas, "") || strings.Contains(ans.Text, "[S4]") {
		t.Errorf("emitted %q, final text %q", pieces, ans.Text)
	}
	if v := tokenCount(t, reg, "input"); v != 700 {
		t.Errorf("input tokens recorded = %v, want 700", v)
	}
	var req struct {
		System   []struct{ Text string }
		Messages []struct {
			Role    string
			Content []struct{ Text string }
		}
	}
	if err := json.Unmarshal(s.body(t, 0), &req); err != nil {
		t.Fatal(err)
	}
	if len(req.System) != 1 || !strings.Contains(req.System[0].Text, "[S<n>]") || len(req.Messages) != 1 ||
		!strings.Contains(req.Messages[0].Content[0].Text, "Question: Qual è il massimale RCA?") {
		t.Errorf("request = %s", s.body(t, 0))
	}
}

func TestBedrockFailureFallsBackToRetrieval(t *testing.T) {
	s := newChatServer(t, "/model/"+bedrockModel+"/converse-stream", func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", "InternalServerException")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"message":"internal"}`)
	})
	q := Question{Language: "en", Text: "What is the requested RCA limit?", Sections: loadSections(t, "0001-attachment-1")}
	ans, err := openTest(t, "bedrock", bedrockConfig(t, s), nil).Answer(t.Context(), q, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if ans.Grounding != GroundingRetrieval || !strings.HasPrefix(ans.Text, textsFor("en").unavailable) ||
		len(ans.Citations) == 0 || !strings.Contains(ans.Citations[0].Quote, "Massimale RCA richiesto") {
		t.Errorf("answer = %+v", ans)
	}
}

func TestOpenUnknownProviderAndMissingSettings(t *testing.T) {
	if _, err := Open(t.Context(), "watson", config.LLM{}, nil, nil, nil); err == nil {
		t.Error("unknown provider accepted")
	}
	if _, err := Open(t.Context(), "openai", config.LLM{}, nil, nil, nil); err == nil {
		t.Error("openai without base URL and model accepted")
	}
	a, err := Open(t.Context(), "rules", config.LLM{}, nil, nil, nil)
	if _, ok := a.(*Retrieval); err != nil || !ok {
		t.Errorf("rules = %T, %v", a, err)
	}
}

func TestPromptKeepsTheRelatedSectionsOfALongDocument(t *testing.T) {
	s := newChatServer(t, "/v1/chat/completions", func(n int, w http.ResponseWriter, r *http.Request) {
		openAIStream(w, []string{"ok"}, 1, 1)
	})
	a := openTest(t, "openai", openAIConfig(s), nil).(*LLM)
	filler := strings.Repeat("Condizioni generali di assicurazione applicabili al contratto. ", 400) // ~25 kB
	var secs []Section
	for i := range 10 {
		secs = append(secs, Section{Index: int32(i), Title: fmt.Sprintf("Articolo %d", i), Text: filler})
	}
	secs[7].Text += "\nFranchigia frontale: EUR 2.500 per sinistro."
	sections, omitted := a.promptSections(Question{Text: "Qual è la franchigia?", Sections: secs}, "it")
	kept := map[int32]bool{}
	size := 0
	for _, s := range sections {
		kept[s.Index] = true
		size += len(s.Text)
	}
	if !kept[7] || !kept[0] || omitted == 0 || omitted+len(sections) != len(secs) || size > maxPromptBytes {
		t.Errorf("kept %v (%d bytes), omitted %d; want section 7 (the answer) and 0 within %d bytes", kept, size, omitted, maxPromptBytes)
	}
	for i := 1; i < len(sections); i++ {
		if sections[i].Index < sections[i-1].Index {
			t.Errorf("sections out of document order: %d after %d", sections[i].Index, sections[i-1].Index)
		}
	}
}

func TestRecentHistoryIsBounded(t *testing.T) {
	var h []Turn
	for i := range 20 {
		h = append(h, Turn{Role: "question", Text: fmt.Sprintf("domanda %d ", i) + strings.Repeat("è", maxTurnBytes)})
	}
	got := recent(h)
	if len(got) != maxHistory || !strings.HasPrefix(got[0].Text, "domanda 12 ") {
		t.Fatalf("%d turns from %q, want the last %d", len(got), got[0].Text[:12], maxHistory)
	}
	for _, turn := range got {
		if len(turn.Text) > maxTurnBytes+len("…") || !utf8.ValidString(turn.Text) {
			t.Errorf("turn of %d bytes (valid UTF-8: %v)", len(turn.Text), utf8.ValidString(turn.Text))
		}
	}
}
