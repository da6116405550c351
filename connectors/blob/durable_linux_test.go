package blob

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestGroupSyncRounds checks the grouping: callers arriving while a
// round is flushing wait for the next round, which serves them all with
// one flush, and each caller gets its own round's error.
func TestGroupSyncRounds(t *testing.T) {
	first := make(chan struct{})
	release := make(chan struct{})
	var rounds atomic.Int32
	g := &groupSync{root: t.TempDir(), flush: func(string) error {
		switch rounds.Add(1) {
		case 1:
			close(first)
			<-release
			return nil
		case 2:
			return errors.New("disk on fire")
		}
		return nil
	}}

	firstErr := make(chan error, 1)
	go func() { firstErr <- g.sync() }()
	<-first // round 1 is flushing

	const later = 10
	var wg sync.WaitGroup
	errs := make(chan error, later)
	for range later {
		wg.Go(func() { errs <- g.sync() })
	}
	// Let every later caller queue up behind round 1.
	for {
		g.mu.Lock()
		n := len(g.waiting)
		g.mu.Unlock()
		if n == later {
			break
		}
		runtime.Gosched()
	}
	close(release)
	if err := <-firstErr; err != nil {
		t.Errorf("round 1 caller: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || err.Error() != "disk on fire" {
			t.Errorf("round 2 caller got %v, want round 2's error", err)
		}
	}
	if n := rounds.Load(); n != 2 {
		t.Errorf("%d flushes for 1+%d callers, want 2", n, later)
	}

	// Idle again: the next caller starts a new round of its own.
	if err := g.sync(); err != nil {
		t.Errorf("after idle: %v", err)
	}
	if n := rounds.Load(); n != 3 {
		t.Errorf("%d flushes, want 3", n)
	}
}

// TestGroupSyncSyncfs runs the real syncfs on a test folder, through a
// store, with uploads racing to store the same and different bytes.
func TestGroupSyncSyncfs(t *testing.T) {
	store, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := store.durable.(*groupSync); !ok {
		t.Fatalf("file store on Linux syncs with %T, want *groupSync", store.durable)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			body := []byte{byte(i % 4), 'x'}
			key, _, _, err := PutContent(t.Context(), store, bytes.NewReader(body))
			if err != nil {
				t.Errorf("put %d: %v", i, err)
				return
			}
			if ok, err := store.Exists(t.Context(), key); !ok || err != nil {
				t.Errorf("put %d: %s not there (%v)", i, key, err)
			}
		})
	}
	wg.Wait()
}

// TestGroupSyncExisting checks when finding a name already in place
// costs a flush: before any round (an earlier process may have renamed
// it just before dying) and while a rename waits for its round, but not
// once every rename has had its round.
func TestGroupSyncExisting(t *testing.T) {
	var rounds atomic.Int32
	g := &groupSync{root: t.TempDir(), flush: func(string) error {
		rounds.Add(1)
		return nil
	}}
	for _, step := range []struct {
		name     string
		renaming int
		want     int32
	}{
		{"fresh store", 0, 1},
		{"settled store", 0, 1},
		{"rename in flight", 1, 2},
		{"settled again", 0, 2},
	} {
		g.renaming = step.renaming
		if err := g.existing("sha256/ab/abc"); err != nil || rounds.Load() != step.want {
			t.Errorf("%s: err %v, %d flushes in all, want %d", step.name, err, rounds.Load(), step.want)
		}
	}
}
