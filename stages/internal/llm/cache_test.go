package llm

import (
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"prismflow/pipeline/testenv"
	"prismflow/stages/persist"
)

// TestCacheServesRepeatsWithoutCalls runs against a real PostgreSQL whose
// schema persist's migrations created, as in production.
func TestCacheServesRepeatsWithoutCalls(t *testing.T) {
	store, err := persist.Open(t.Context(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeChat(w, `{"answer":"`+req.Messages[1].Content+`"}`, 100, 10)
	})
	reg := prometheus.NewRegistry()
	c := New(f.backend(), Options{Cache: NewCache(store.Pool()), Metrics: NewMetrics(reg), Prices: Prices{InputPer1K: 1}})

	first, err := c.Complete(t.Context(), testRequest("same input"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Complete(t.Context(), testRequest("same input"))
	if err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("server calls = %d, want 1: the repeat must come from the cache", f.calls.Load())
	}
	if first.Cached || !second.Cached || second.Text != first.Text {
		t.Errorf("first = %+v, second = %+v", first, second)
	}
	if second.InputTokens != 0 || second.OutputTokens != 0 || second.CostUSD != 0 || second.Calls != 0 {
		t.Errorf("a cache hit must cost nothing: %+v", second)
	}
	if got := testutil.ToFloat64(c.o.Metrics.cacheHits.WithLabelValues("openai")); got != 1 {
		t.Errorf("cache hits metric = %v", got)
	}
	if got := testutil.ToFloat64(c.o.Metrics.tokens.WithLabelValues("openai", "test-model", "input")); got != 100 {
		t.Errorf("input tokens metric = %v, want only the first call's", got)
	}

	// Any part of the key changing is a miss: input, prompt version.
	other := testRequest("other input")
	if _, err := c.Complete(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	newPrompt := testRequest("same input")
	newPrompt.PromptVersion = "v2"
	if _, err := c.Complete(t.Context(), newPrompt); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 3 {
		t.Errorf("server calls = %d, want 3", f.calls.Load())
	}

	var hits, rows int64
	var cost float64
	if err := store.Pool().QueryRow(t.Context(), `SELECT count(*), sum(hits), sum(cost_usd) FROM llm_cache`).Scan(&rows, &hits, &cost); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || hits != 1 || math.Abs(cost-0.3) > 1e-9 {
		t.Errorf("llm_cache: %d rows, %d hits, cost %v; want 3, 1, 0.3", rows, hits, cost)
	}
}

// An invalid answer must never be cached: the next call asks again.
func TestCacheSkipsInvalidAnswers(t *testing.T) {
	store, err := persist.Open(t.Context(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	f := newFakeOpenAI(t, func(n int, w http.ResponseWriter, r *http.Request, req chatRequest) {
		writeChat(w, `not json`, 1, 1)
	})
	c := New(f.backend(), Options{Cache: NewCache(store.Pool()), Repairs: -1})
	for range 2 {
		if _, err := c.Complete(t.Context(), testRequest("q")); err == nil || !strings.Contains(err.Error(), "not well-formed JSON") {
			t.Fatalf("err = %v", err)
		}
	}
	if f.calls.Load() != 2 {
		t.Errorf("server calls = %d, want 2", f.calls.Load())
	}
}

func TestCacheKeyIsUnambiguous(t *testing.T) {
	a := CacheKey("openai", "m", "v1", "x")
	for _, b := range [][]byte{
		CacheKey("openai", "m", "v1", "y"),
		CacheKey("openai", "m", "v2", "x"),
		CacheKey("openai", "m2", "v1", "x"),
		CacheKey("bedrock", "m", "v1", "x"),
		CacheKey("openai", "mv", "1", "x"), // same concatenation, other split
	} {
		if string(a) == string(b) {
			t.Errorf("two different tuples share key %x", a)
		}
	}
	if string(a) != string(CacheKey("openai", "m", "v1", "x")) {
		t.Error("key is not deterministic")
	}
}
