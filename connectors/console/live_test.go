package console

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/connectors/console/live"
	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
	"prismflow/schemas/events"
)

// TestLiveReprocessAndRedrive runs the console against a real broker:
// an upload reaches the inbox's event stream, a reprocess sends the
// document through extract again as run 2, and the pipeline page lists
// the tenant's dead letter and redrives it.
func TestLiveReprocessAndRedrive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testenv.Kafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), 2, topology.Topics...); err != nil {
		t.Fatal(err)
	}
	srcl, err := sr.NewClient(sr.URLs(testenv.Registry(t, brokers)))
	if err != nil {
		t.Fatal(err)
	}
	codec := schemas.NewCodec(srcl)
	pub, err := pipeline.NewPublisher(codec, "test", kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	hub := live.NewHub(cl, codec, nil, slog.New(slog.DiscardHandler))
	hubDone := make(chan error, 1)
	hubCtx, stopHub := context.WithCancel(ctx)
	go func() { hubDone <- hub.Run(hubCtx) }()
	defer func() {
		stopHub()
		if err := <-hubDone; err != nil {
			t.Errorf("hub: %v", err)
		}
	}()
	select {
	case <-hub.Ready():
	case <-ctx.Done():
		t.Fatal("hub never ready")
	}

	e := newEnvWith(t, false, func(ctx context.Context, ev events.DocumentReceived) error {
		return pub.Publish(ctx, topology.DocumentReceived, "ingest", &ev)
	}, func(s *Server) {
		s.Live = hub
		s.Operator = KafkaOperator{Client: cl, Codec: codec}
	})
	b := e.browser(t)
	token := b.csrf()

	// The event stream, opened before the upload.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	updates := make(chan live.Update, 16)
	go func() {
		defer close(updates)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var u live.Update
				if json.Unmarshal([]byte(data), &u) == nil && u.Document != "" {
					updates <- u
				}
			}
		}
	}()
	await := func(what string, ok func(live.Update) bool) live.Update {
		t.Helper()
		for {
			select {
			case u, open := <-updates:
				if !open {
					t.Fatalf("event stream ended before %s", what)
				}
				if ok(u) {
					return u
				}
			case <-ctx.Done():
				t.Fatalf("no update: %s", what)
			}
		}
	}
	// Another tenant's document never reaches this stream.
	other := events.DocumentReceived{Document: events.Document{ID: "doc-other", Tenant: "acme", Filename: "x.txt"}}
	if err := pub.Publish(ctx, topology.DocumentReceived, "ingest", &other); err != nil {
		t.Fatal(err)
	}

	body, ct := multipartForm(t, map[string]string{"csrf": token}, "richiesta.txt", []byte("Richiesta di preventivo"))
	up, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
	up.Header.Set("Content-Type", ct)
	r := b.do(up)
	id := strings.TrimPrefix(r.Header.Get("Location"), "/documents/")
	if r.StatusCode != http.StatusSeeOther || id == "" {
		t.Fatalf("upload: %d", r.StatusCode)
	}
	u := await("the upload", func(u live.Update) bool {
		if u.Tenant != "default" {
			t.Errorf("update of tenant %q in the default tenant's stream", u.Tenant)
		}
		return u.Document == id
	})
	if u.Status != live.StatusProcessing || u.Run != 1 {
		t.Errorf("upload update %+v", u)
	}

	// Reprocess from extract: the input record again, as run 2.
	r = b.post("/documents/"+id+"/reprocess", url.Values{"stage": {"extract"}, "csrf": {token}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/documents/"+id+"?done=reprocess" {
		t.Fatalf("reprocess: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	await("run 2", func(u live.Update) bool { return u.Document == id && u.Run == 2 })
	if r := b.post("/documents/"+id+"/reprocess", url.Values{"stage": {"nowhere"}, "csrf": {token}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown stage: %d, want 400", r.StatusCode)
	}
	if r := b.get("/documents/" + id + "?done=reprocess"); len(find(r.doc, `form[data-testid=reprocess-form]`)) != 1 ||
		!strings.Contains(r.body, "Rielaborazione avviata") {
		t.Error("document page without its reprocess form or notice")
	}

	// A dead letter of the document, and one of another tenant.
	original, err := codec.Encode(ctx, topology.DocumentReceived, &events.DocumentReceived{
		Meta: events.Meta{Stage: "ingest", Run: 2}, Document: events.Document{ID: id, Tenant: "default", Filename: "richiesta.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range []events.DeadLetter{
		{Meta: events.Meta{Stage: "extract", Run: 2}, DocumentID: id, Tenant: "default", Topic: topology.DocumentReceived,
			Key: []byte(id), Value: original, Error: "extract: corrupt", Permanent: true, Attempts: 1},
		{Meta: events.Meta{Stage: "extract", Run: 1}, DocumentID: "doc-other", Tenant: "acme", Topic: topology.DocumentReceived,
			Key: []byte("doc-other"), Value: original, Error: "extract: corrupt", Attempts: 1},
	} {
		v, err := codec.Encode(ctx, topology.DeadLetter, &dl)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topology.DeadLetter, Key: dl.Key, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	await("the dead letter", func(u live.Update) bool { return u.Document == id && u.Status == live.StatusFailed })
	r = b.get("/pipeline")
	rows := find(r.doc, `tr[data-testid=deadletter-row]`)
	if r.StatusCode != http.StatusOK || len(rows) != 1 || attr(rows[0], "data-doc-id") != id || len(find(rows[0], `button[data-testid=redrive]`)) != 1 {
		t.Fatalf("pipeline page: %d, %d dead-letter rows, want the tenant's one\n%s", r.StatusCode, len(rows), r.body)
	}
	r = b.post("/pipeline/redrive", url.Values{"id": {attr(rows[0], "data-id")}, "csrf": {token}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("redrive: %d", r.StatusCode)
	}
	await("the redriven record", func(u live.Update) bool { return u.Document == id && u.Stage == "ingest" && u.Run == 2 })
	// The document page's redrive: the same record once more.
	r = b.post("/documents/"+id+"/redrive", url.Values{"csrf": {token}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/documents/"+id+"?done=redrive" {
		t.Fatalf("document redrive: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	await("the document's redriven record", func(u live.Update) bool { return u.Document == id && u.Stage == "ingest" && u.Run == 2 })
	// Another tenant's dead letter cannot be redriven from here.
	dls, err := (KafkaOperator{Client: cl, Codec: codec}).DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dls {
		if d.Tenant == "acme" {
			if r := b.post("/pipeline/redrive", url.Values{"id": {d.ID}, "csrf": {token}}); r.StatusCode != http.StatusNotFound {
				t.Errorf("redrive of another tenant's dead letter: %d, want 404", r.StatusCode)
			}
		}
	}
}
