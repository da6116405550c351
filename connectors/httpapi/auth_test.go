package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"prismflow/connectors/blob"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
)

func TestAuthRequired(t *testing.T) {
	tests := []struct {
		addr   string
		forced bool
		want   bool
	}{
		{"localhost:8080", false, false},
		{"127.0.0.1:8080", false, false},
		{"[::1]:8080", false, false},
		{"localhost:8080", true, true},
		{":8080", false, true},
		{"0.0.0.0:8080", false, true},
		{"192.0.2.10:8080", false, true},
		{"api.example.com:443", false, true},
	}
	for _, tt := range tests {
		if got := AuthRequired(tt.addr, tt.forced); got != tt.want {
			t.Errorf("AuthRequired(%q, %v) = %v, want %v", tt.addr, tt.forced, got, tt.want)
		}
	}
}

// authServer is the API with real PostgreSQL behind it; an upload is
// stored as a document at once, as the persist stage would.
func authServer(t *testing.T, auth *Auth) (*httptest.Server, *persist.Store, *int) {
	t.Helper()
	ctx := context.Background()
	store, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	blobs, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &persist.Persister{Store: store}
	var mu sync.Mutex
	published := 0
	auth.Keys = NewKeyStore(store.Pool())
	s := &Server{
		Ingest: &ingest.Ingester{Blobs: blobs, MaxBytes: 1 << 20, Publish: func(ctx context.Context, ev events.DocumentReceived) error {
			mu.Lock()
			published++
			mu.Unlock()
			ev.Meta.Run = 1
			return p.Received(ctx, ev)
		}},
		Store: store,
		Blobs: blobs,
		Auth:  auth,
		Log:   slog.New(slog.DiscardHandler),
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, store, &published
}

func call(t *testing.T, method, url, key string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func uploadText(t *testing.T, srv *httptest.Server, key, text string, headers ...string) (*http.Response, UploadResponse) {
	t.Helper()
	resp, b := call(t, http.MethodPost, srv.URL+"/v1/documents?filename=note.txt", key, strings.NewReader(text), headers...)
	var u UploadResponse
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &u); err != nil {
			t.Fatal(err)
		}
	}
	return resp, u
}

func TestTenantsAreIsolatedByKey(t *testing.T) {
	srv, store, _ := authServer(t, &Auth{Required: true})
	ctx := context.Background()
	keys := NewKeyStore(store.Pool())
	acme, err := keys.Create(ctx, "acme", "test")
	if err != nil {
		t.Fatal(err)
	}
	globex, err := keys.Create(ctx, "globex", "test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(acme, keyPrefix) || acme == globex {
		t.Fatalf("keys %q, %q", acme, globex)
	}

	if resp, _ := uploadText(t, srv, "", "senza chiave"); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no key: %s, want 401 with WWW-Authenticate", resp.Status)
	}
	if resp, _ := uploadText(t, srv, "pf_not-a-key", "chiave falsa"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown key: %s, want 401", resp.Status)
	}
	if resp, _ := call(t, http.MethodGet, srv.URL+"/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz without a key: %s, want open", resp.Status)
	}

	resp, doc := uploadText(t, srv, acme, "richiesta di acme")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload with acme's key: %s", resp.Status)
	}
	d, err := store.Document(ctx, "acme", doc.ID)
	if err != nil || d.Tenant != "acme" {
		t.Fatalf("the document is not acme's: %+v, %v", d, err)
	}
	if resp, _ := call(t, http.MethodGet, srv.URL+"/v1/documents/"+doc.ID, acme, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("acme reads its document: %s", resp.Status)
	}
	if resp, _ := call(t, http.MethodGet, srv.URL+"/v1/documents/"+doc.ID, globex, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("globex reads acme's document: %s, want 404 (not 403: ids must not be probed)", resp.Status)
	}
	_, b := call(t, http.MethodGet, srv.URL+"/v1/documents", globex, nil)
	if strings.Contains(string(b), doc.ID) {
		t.Errorf("globex's list shows acme's document: %s", b)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	srv, store, _ := authServer(t, &Auth{PerSecond: 0.5, Burst: 2})
	key, err := NewKeyStore(store.Pool()).Create(context.Background(), "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if resp, _ := call(t, http.MethodGet, srv.URL+"/v1/documents", key, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %s", i, resp.Status)
		}
	}
	resp, b := call(t, http.MethodGet, srv.URL+"/v1/documents", key, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request: %s, want 429", resp.Status)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Errorf("Retry-After = %q, want 1..2 seconds", resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(b), `"error"`) {
		t.Errorf("429 body is not a JSON error: %s", b)
	}
	// Another key has its own bucket.
	other, _ := NewKeyStore(store.Pool()).Create(context.Background(), "acme", "")
	if resp, _ := call(t, http.MethodGet, srv.URL+"/v1/documents", other, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("another key: %s, want its own allowance", resp.Status)
	}
}

func TestIdempotencyKeyNamesOneDocument(t *testing.T) {
	srv, _, published := authServer(t, &Auth{})
	resp1, a := uploadText(t, srv, "", "richiesta", "Idempotency-Key", "req-42")
	resp2, b := uploadText(t, srv, "", "richiesta", "Idempotency-Key", "req-42")
	if resp1.StatusCode != http.StatusAccepted || resp2.StatusCode != http.StatusAccepted {
		t.Fatalf("statuses %s, %s", resp1.Status, resp2.Status)
	}
	if a.ID == "" || a.ID != b.ID {
		t.Errorf("ids %q and %q, want the same document", a.ID, b.ID)
	}
	_, c := uploadText(t, srv, "", "richiesta", "Idempotency-Key", "req-43")
	if c.ID == a.ID {
		t.Error("another key got the same document")
	}
	if *published != 2 {
		t.Errorf("%d DocumentReceived events published, want 2 (one per key)", *published)
	}
}
