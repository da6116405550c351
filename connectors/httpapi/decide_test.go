package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"prismflow/schemas/events"
	"prismflow/stages/persist"
)

func TestFeedbackDecisionsAreKept(t *testing.T) {
	srv, store, _ := authServer(t, &Auth{Required: true})
	ctx := context.Background()
	keys := NewKeyStore(store.Pool())
	acme, _ := keys.Create(ctx, "acme", "reviewer")
	globex, _ := keys.Create(ctx, "globex", "")

	doc := events.Document{ID: "doc-1", Tenant: "acme", Filename: "richiesta.pdf"}
	meta := events.Meta{Stage: "analyze", Run: 1, ProducedAt: time.Now()}
	sections := []events.Section{{Index: 0, Title: "Dati", Text: "Massimale 1.000.000 decorrenza 01/01/2020"}}
	p := &persist.Persister{Store: store}
	if err := p.Received(ctx, events.DocumentReceived{Meta: events.Meta{Stage: "ingest", Run: 1}, Document: doc}); err != nil {
		t.Fatal(err)
	}
	if err := p.Analyzed(ctx, events.SectionsAnalyzed{Meta: meta, Document: doc, Sections: sections, Provider: "rules",
		Feedback: []events.FeedbackItem{
			{ID: "item-a", SectionIndex: 0, Type: "amount_without_currency", Severity: events.SeverityMedium, Message: "Importo senza valuta", Quote: "1.000.000"},
			{ID: "item-b", SectionIndex: 0, Type: "date_in_past", Severity: events.SeverityHigh, Message: "Data passata", Quote: "01/01/2020"},
		}}); err != nil {
		t.Fatal(err)
	}

	post := func(key, item, body string) int {
		resp, _ := call(t, http.MethodPost, srv.URL+"/v1/documents/doc-1/feedback/"+item, key, strings.NewReader(body))
		return resp.StatusCode
	}
	if code := post(acme, "item-a", `{"action":"accept","comment":"va chiesta la valuta"}`); code != http.StatusOK {
		t.Fatalf("accept: %d", code)
	}
	if code := post(acme, "item-b", `{"action":"reject"}`); code != http.StatusOK {
		t.Fatalf("reject: %d", code)
	}
	for _, tt := range []struct {
		key, item, body string
		want            int
	}{
		{acme, "item-zzz", `{"action":"accept"}`, http.StatusNotFound},
		{globex, "item-a", `{"action":"accept"}`, http.StatusNotFound},
		{acme, "item-a", `{"action":"maybe"}`, http.StatusBadRequest},
		{acme, "item-a", `not json`, http.StatusBadRequest},
	} {
		if code := post(tt.key, tt.item, tt.body); code != tt.want {
			t.Errorf("POST %s %s: %d, want %d", tt.item, tt.body, code, tt.want)
		}
	}

	// A later decision replaces the shown one; both stay stored.
	if code := post(acme, "item-b", `{"action":"accept","comment":"ripensato"}`); code != http.StatusOK {
		t.Fatalf("second decision: %d", code)
	}
	_, b := call(t, http.MethodGet, srv.URL+"/v1/documents/doc-1", acme, nil)
	var v struct {
		Sections []struct {
			Feedback []struct {
				ID       string                `json:"id"`
				Decision *persist.DecisionView `json:"decision"`
			} `json:"feedback"`
		} `json:"sections"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Sections) != 1 {
		t.Fatalf("document: %v\n%s", err, b)
	}
	got := map[string]*persist.DecisionView{}
	for _, f := range v.Sections[0].Feedback {
		got[f.ID] = f.Decision
	}
	if d := got["item-a"]; d == nil || d.Action != "accept" || d.Comment != "va chiesta la valuta" || !strings.HasPrefix(d.Actor, "acme/key:") {
		t.Errorf("item-a decision = %+v", d)
	}
	if d := got["item-b"]; d == nil || d.Action != "accept" || d.Comment != "ripensato" {
		t.Errorf("item-b decision = %+v, want the newest one", d)
	}
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM feedback_decisions WHERE document = 'doc-1'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d decisions stored (%v), want all 3", n, err)
	}
}
