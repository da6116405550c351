package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline/config"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
	"prismflow/stages/analyze/chat"
	"prismflow/stages/persist"
)

// reviewServer is the API with keys required and the rules chat, and one
// classified document of tenant acme.
func reviewServer(t *testing.T) (srv *httptest.Server, acme, globex string) {
	t.Helper()
	ctx := context.Background()
	store, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	answerer, err := chat.Open(ctx, "rules", config.LLM{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := NewKeyStore(store.Pool())
	acme, _ = keys.Create(ctx, "acme", "")
	globex, _ = keys.Create(ctx, "globex", "")
	s := &Server{Store: store, Chat: answerer, Auth: &Auth{Keys: keys, Required: true}, Log: slog.New(slog.DiscardHandler)}
	srv = httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	doc := events.Document{ID: "doc-1", Tenant: "acme", Filename: "richiesta.pdf"}
	meta := events.Meta{Stage: "classify", Run: 1, ProducedAt: time.Now()}
	sections := []events.Section{
		{Index: 0, Title: "Contraente", Text: "Contraente Rossi Trasporti srl con sede in Milano."},
		{Index: 1, Title: "Veicolo", Text: "Autocarro con targa AB123CD immatricolato nel 2019."},
	}
	p := &persist.Persister{Store: store}
	for _, err := range []error{
		p.Received(ctx, events.DocumentReceived{Meta: events.Meta{Stage: "ingest", Run: 1}, Document: doc}),
		p.Split(ctx, events.SectionsSplit{Meta: meta, Document: doc, Sections: sections}),
		p.Classified(ctx, events.DocumentClassified{Meta: meta, Document: doc, Category: "RC Auto", Confidence: 0.9,
			Fields: []events.Field{{Name: "targa", Value: "AB123CD", SectionIndex: 1, Start: 20, End: 27}}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return srv, acme, globex
}

func TestCorrections(t *testing.T) {
	srv, acme, globex := reviewServer(t)
	post := func(key, body string) (int, persist.CorrectionView) {
		resp, b := call(t, http.MethodPost, srv.URL+"/v1/documents/doc-1/corrections", key, strings.NewReader(body))
		var c persist.CorrectionView
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, c
	}
	code, c := post(acme, `{"field":"targa","value":"AB124CD"}`)
	if code != http.StatusOK || c.Original != "AB123CD" || c.Value != "AB124CD" || !strings.HasPrefix(c.Actor, "acme/key:") || c.Run != 1 {
		t.Fatalf("correct field: %d %+v", code, c)
	}
	if code, c = post(acme, `{"field":"category","value":"Fabbricato"}`); code != http.StatusOK || c.Original != "RC Auto" {
		t.Fatalf("correct category: %d %+v", code, c)
	}
	for _, tt := range []struct {
		key, body string
		want      int
	}{
		{globex, `{"field":"targa","value":"X"}`, http.StatusNotFound},
		{acme, `{"field":"category","value":""}`, http.StatusBadRequest},
		{acme, `{"field":"not a name","value":"x"}`, http.StatusBadRequest},
		{acme, `{"field":"targa","value":"x","extra":1}`, http.StatusBadRequest},
		{"", `{"field":"targa","value":"x"}`, http.StatusUnauthorized},
	} {
		if code, _ := post(tt.key, tt.body); code != tt.want {
			t.Errorf("%s: %d, want %d", tt.body, code, tt.want)
		}
	}
	_, b := call(t, http.MethodGet, srv.URL+"/v1/documents/doc-1", acme, nil)
	var doc persist.DocumentView
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Corrections) != 2 {
		t.Fatalf("document shows %d corrections (%v)", len(doc.Corrections), err)
	}
}

func TestChat(t *testing.T) {
	srv, acme, globex := reviewServer(t)
	url := srv.URL + "/v1/documents/doc-1/chat"

	resp, b := call(t, http.MethodPost, url, acme, strings.NewReader(`{"question":"Qual è la targa?","language":"it"}`))
	var answer persist.ChatMessage
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &answer) != nil {
		t.Fatalf("ask: %d %s", resp.StatusCode, b)
	}
	if answer.Role != "answer" || answer.Grounding != "retrieval" || answer.Provider != "rules" || len(answer.Citations) == 0 || answer.Citations[0].Section != 1 {
		t.Fatalf("answer %+v, want a retrieval answer citing section 1", answer)
	}

	// Streamed: deltas, then the answer.
	resp, b = call(t, http.MethodPost, url, acme, strings.NewReader(`{"question":"Dove ha sede il contraente?"}`), "Accept", "application/x-ndjson")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var deltas strings.Builder
	var last struct {
		Delta  *string              `json:"delta"`
		Answer *persist.ChatMessage `json:"answer"`
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		last.Delta, last.Answer = nil, nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if last.Delta != nil {
			deltas.WriteString(*last.Delta)
		}
	}
	if last.Answer == nil || deltas.String() != last.Answer.Text {
		t.Fatalf("streamed %q, final %+v", deltas.String(), last.Answer)
	}

	resp, b = call(t, http.MethodGet, url, acme, nil)
	var hist struct{ Messages []persist.ChatMessage }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &hist) != nil || len(hist.Messages) != 4 ||
		hist.Messages[0].Role != "question" || hist.Messages[0].Text != "Qual è la targa?" || !strings.HasPrefix(hist.Messages[0].Actor, "acme/key:") {
		t.Fatalf("history: %d %s", resp.StatusCode, b)
	}

	for _, tt := range []struct {
		key, method, body, accept string
		want                      int
	}{
		{globex, http.MethodGet, "", "", http.StatusNotFound},
		{globex, http.MethodPost, `{"question":"targa"}`, "", http.StatusNotFound},
		{globex, http.MethodPost, `{"question":"targa"}`, "application/x-ndjson", http.StatusNotFound},
		{acme, http.MethodPost, `{"question":"   "}`, "application/x-ndjson", http.StatusBadRequest},
		{acme, http.MethodPost, `{"question":"` + strings.Repeat("a", maxQuestionRunes+1) + `"}`, "", http.StatusBadRequest},
		{acme, http.MethodPost, `not json`, "", http.StatusBadRequest},
	} {
		var body *strings.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		var resp *http.Response
		if body != nil {
			resp, _ = call(t, tt.method, url, tt.key, body, "Accept", tt.accept)
		} else {
			resp, _ = call(t, tt.method, url, tt.key, nil, "Accept", tt.accept)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("%s %.40s: %d, want %d", tt.method, tt.body, resp.StatusCode, tt.want)
		}
	}
}

func TestChatOff(t *testing.T) {
	srv, _, _ := authServer(t, &Auth{})
	resp, b := call(t, http.MethodPost, srv.URL+"/v1/documents/doc-1/chat", "", strings.NewReader(`{"question":"x"}`))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "not configured") {
		t.Fatalf("chat without provider: %d %s", resp.StatusCode, b)
	}
}
