package pipeline

import (
	"context"
	"math/rand/v2"
	"time"
)

// Retry is the policy for transient errors. Zero fields take the defaults.
type Retry struct {
	// Attempts is how many times a record is tried before it is
	// dead-lettered, the first try included. Default 5.
	Attempts int
	// Initial is the backoff ceiling after the first failure. Default 200ms.
	Initial time.Duration
	// Max caps the backoff ceiling. Default 10s.
	Max time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Initial <= 0 {
		r.Initial = 200 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Second
	}
	if r.Max < r.Initial {
		r.Max = r.Initial
	}
	return r
}

// backoff returns how long to wait after the n-th failed attempt (n >= 1):
// a uniformly random duration in [0, min(Max, Initial*2^(n-1))]. Full
// jitter spreads the retries of many records failing on the same outage
// (AWS architecture blog, "Exponential Backoff And Jitter").
func (r Retry) backoff(n int) time.Duration {
	ceil := r.Initial
	for i := 1; i < n && ceil < r.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, r.Max)
	return rand.N(ceil + 1)
}

// sleep waits d or until ctx is done, reporting whether it waited fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
