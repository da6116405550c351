package live

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline/topology"
	"prismflow/schemas/events"
)

// sseEvent is one event of a text/event-stream; comment is set for a
// comment line (the heartbeat).
type sseEvent struct {
	name, data, comment string
}

// readEvents parses the stream into events until it ends.
func readEvents(body *bufio.Reader, out chan<- sseEvent) {
	defer close(out)
	var ev sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			out <- sseEvent{comment: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		case strings.HasPrefix(line, "retry: "):
			ev.name = "retry"
		}
	}
}

func nextEvent(t *testing.T, ch <-chan sseEvent, skipComments bool) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if skipComments && ev.comment != "" {
				continue
			}
			return ev
		case <-time.After(wait):
			t.Fatal("no event on the stream")
		}
	}
}

// TestServeSSE streams a tenant's updates to an HTTP client, sends
// heartbeats and a resync after drops, and lets go of the subscription
// when the client disconnects.
func TestServeSSE(t *testing.T) {
	e := newEnv(t)
	h := e.hub(WithHeartbeat(50 * time.Millisecond))
	e.start(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeSSE(w, r, r.URL.Query().Get("tenant"))
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?tenant=acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, ct)
	}
	evs := make(chan sseEvent, 64)
	go readEvents(bufio.NewReader(resp.Body), evs)
	if ev := nextEvent(t, evs, true); ev.name != "retry" {
		t.Fatalf("first event %+v, want the retry interval", ev)
	}
	eventually(t, "the stream's subscription", func() bool { return h.subscribers() == 1 })

	e.produce(topology.DocumentReceived, "x1", &events.DocumentReceived{Meta: meta("ingest", 1), Document: document("x1", "other")}, "ingest")
	e.produce(topology.TextExtracted, "d1", &events.TextExtracted{Meta: meta("extract", 1), Document: document("d1", "acme")}, "extract")
	ev := nextEvent(t, evs, true)
	if ev.name != "update" {
		t.Fatalf("got %+v, want an update", ev)
	}
	var u Update
	if err := json.Unmarshal([]byte(ev.data), &u); err != nil {
		t.Fatalf("update data %q: %v", ev.data, err)
	}
	if u.Document != "d1" || u.Tenant != "acme" || u.Stage != "extract" || u.Status != StatusProcessing || u.At.IsZero() {
		t.Errorf("streamed %+v, want d1 of acme processing after extract (and nothing of another tenant)", u)
	}
	// The JSON names the page script reads.
	for _, k := range []string{`"document":"d1"`, `"tenant":"acme"`, `"stage":"extract"`, `"status":"processing"`, `"run":1`, `"at":"`} {
		if !strings.Contains(ev.data, k) {
			t.Errorf("update data %s lacks %s", ev.data, k)
		}
	}

	if ev := nextEvent(t, evs, false); ev.comment != "heartbeat" {
		t.Errorf("idle stream sent %+v, want a heartbeat", ev)
	}

	// A client that fell behind is told to reload.
	h.mu.Lock()
	for s := range h.subs {
		s.dropped.Add(3)
	}
	h.mu.Unlock()
	ev = nextEvent(t, evs, true)
	if ev.name != "resync" || ev.data != `{"dropped":3}` {
		t.Errorf("after drops got %+v, want resync with 3 dropped", ev)
	}

	cancel()
	eventually(t, "the handler to let go of its subscription", func() bool { return h.subscribers() == 0 })
}

// TestServeSSEEndsWithHub: streams end when the hub stops, so an HTTP
// server's shutdown is not held open by them.
func TestServeSSEEndsWithHub(t *testing.T) {
	e := newEnv(t)
	h := e.hub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	<-h.Ready()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeSSE(w, r, "") }))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := make(chan sseEvent, 8)
	go readEvents(bufio.NewReader(resp.Body), evs)
	nextEvent(t, evs, true)
	eventually(t, "the stream's subscription", func() bool { return h.subscribers() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case _, ok := <-evs:
			if !ok {
				return // the stream ended
			}
		case <-time.After(wait):
			t.Fatal("stream still open after the hub stopped")
		}
	}
}
