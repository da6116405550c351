package blob

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
)

// Memory is a Store in memory: for tests and fuzzing, where a store must
// cost no disk and leave nothing behind. It is safe for concurrent use.
type Memory struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: map[string][]byte{}} }

// Put implements Store.
func (s *Memory) Put(ctx context.Context, key string, r io.Reader) error {
	if err := validateKey(key); err != nil {
		return err
	}
	b, err := io.ReadAll(ctxReader{ctx, r})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = b
	return nil
}

// Get implements Store.
func (s *Memory) Get(_ context.Context, key string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Exists implements Store.
func (s *Memory) Exists(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[key]
	return ok, nil
}

// Ping implements Store.
func (s *Memory) Ping(context.Context) error { return nil }

// Keys lists the stored keys, sorted.
func (s *Memory) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := make([]string, 0, len(s.m))
	for k := range s.m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
