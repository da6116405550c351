// Package blob stores the files prismflow handles (originals, large texts,
// rendered outputs) outside Kafka: Kafka carries only references to them
// (the claim-check pattern).
//
// Keys are slash-separated paths. Originals are stored content addressed
// (sha256/ab/abcdef...), so the same bytes uploaded twice are kept once.
// A store is opened from a URL: file:///path or s3://bucket/prefix.
package blob

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound is returned by Get for a key that does not exist.
var ErrNotFound = errors.New("blob not found")

// Store is a flat key-value store for large bytes.
type Store interface {
	// Put stores r under key, replacing what was there. The write is
	// atomic: a reader sees the old bytes or the new ones, never a part.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the bytes under key; ErrNotFound if there are none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Exists reports whether key holds bytes.
	Exists(ctx context.Context, key string) (bool, error)
	// Ping checks that the store is reachable (for /readyz).
	Ping(ctx context.Context) error
}
