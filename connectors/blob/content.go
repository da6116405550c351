package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// ContentKey returns the content-addressed key of bytes whose SHA-256 is
// sha256hex: sha256/<first two hex digits>/<all hex digits>. The two-digit
// fan-out keeps directories of a file store small.
func ContentKey(sha256hex string) string {
	return "sha256/" + sha256hex[:2] + "/" + sha256hex
}

// contentPutter is implemented by stores that can store content
// addressed bytes better than by spooling to a local file first.
type contentPutter interface {
	putContent(ctx context.Context, r io.Reader) (key, sum string, size int64, err error)
}

// PutContent stores the bytes of r under their content address (see
// ContentKey) and returns the key, the hex SHA-256 and the size. r is
// streamed and hashed on the way, never held in memory whole. If the key
// already exists the bytes are not written again, so the same original
// uploaded twice is kept once.
func PutContent(ctx context.Context, s Store, r io.Reader) (key, sha256hex string, size int64, err error) {
	if cp, ok := s.(contentPutter); ok {
		key, sha256hex, size, err = cp.putContent(ctx, r)
		if err != nil {
			return "", "", 0, fmt.Errorf("blob: put content: %w", err)
		}
		return key, sha256hex, size, nil
	}
	// A generic store needs the key before the upload starts, and the key
	// is known only at the end of the stream: spool to a local temporary
	// file while hashing, then upload from it.
	spool, err := os.CreateTemp("", "prismflow-blob-*")
	if err != nil {
		return "", "", 0, fmt.Errorf("blob: put content: spool: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	sha256hex, size, err = copyHashed(ctx, spool, r)
	if err != nil {
		return "", "", 0, fmt.Errorf("blob: put content: spool: %w", err)
	}
	key = ContentKey(sha256hex)
	ok, err := s.Exists(ctx, key)
	if err != nil {
		return "", "", 0, fmt.Errorf("blob: put content: %w", err)
	}
	if !ok {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return "", "", 0, fmt.Errorf("blob: put content: rewind spool: %w", err)
		}
		if err := s.Put(ctx, key, spool); err != nil {
			return "", "", 0, fmt.Errorf("blob: put content: %w", err)
		}
	}
	return key, sha256hex, size, nil
}

// copyHashed copies r to w and returns the hex SHA-256 and size of what
// was copied.
func copyHashed(ctx context.Context, w io.Writer, r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), ctxReader{ctx, r})
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
