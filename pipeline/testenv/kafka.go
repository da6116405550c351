package testenv

import (
	"context"
	"testing"
	"time"

	"prismflow/pipeline/broker"
)

// Kafka starts an in-process Kafka broker (kfake, as the embedded broker
// runs it) on a free loopback port with a temporary data directory and
// returns its seed addresses; it is closed when the test ends.
func Kafka(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{
		DataDir: t.TempDir(),
		Addr:    "127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}
