package testenv

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"prismflow/pipeline/registry"
)

// Registry starts prismflow's embedded schema registry on the Kafka
// cluster at brokers, serves it over HTTP on a loopback port and returns
// its URL; both stop when the test ends.
func Registry(t testing.TB, brokers []string) (url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := registry.New(ctx, registry.Config{Brokers: brokers}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start schema registry: %v", err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(func() {
		srv.Close()
		reg.Close()
	})
	return srv.URL
}
