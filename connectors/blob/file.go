package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is a Store on a local directory. Each key is a file under the
// directory; writes go to a temporary file beside the target, are synced
// and then renamed over it, so readers never see a partial file and a
// crash leaves either the old bytes or the new ones.
type File struct {
	dir     string
	durable durability
}

// NewFile returns a store rooted at dir, creating dir if needed.
func NewFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: file store %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("blob: file store: %w", err)
	}
	return &File{dir: abs, durable: newDurability(abs)}, nil
}

// Dir returns the directory the store writes under.
func (f *File) Dir() string { return f.dir }

// tempPrefix starts the names of in-flight temporary files; keys may not
// use it, so a temporary file can never be mistaken for a blob.
const tempPrefix = ".tmp-"

// validateKey refuses keys that could escape the store's root or collide
// with temporary files. Keys come from events, so a bad key is bad input.
func validateKey(key string) error {
	if key == "" {
		return errors.New("empty blob key")
	}
	if strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid blob key %q: must be a relative slash-separated path", key)
	}
	for _, part := range strings.Split(key, "/") {
		switch {
		case part == "" || part == "." || part == "..":
			return fmt.Errorf("invalid blob key %q: empty, . or .. path element", key)
		case strings.HasPrefix(part, tempPrefix):
			return fmt.Errorf("invalid blob key %q: %q prefix is reserved", key, tempPrefix)
		}
	}
	return nil
}

func (f *File) path(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (f *File) Put(ctx context.Context, key string, r io.Reader) error {
	target, err := f.path(key)
	if err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	tmp, err := f.createTemp(filepath.Dir(target))
	if err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		discard(tmp)
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := f.commit(tmp, target); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	return nil
}

// createTemp opens a temporary file in dir (created if needed), on the
// same file system as the final name so that the rename is atomic.
func (f *File) createTemp(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, tempPrefix+"*")
}

// commit makes tmp durable and moves it to target. The directory entry
// is made durable as well, otherwise the rename itself may be lost on
// power loss.
func (f *File) commit(tmp *os.File, target string) error {
	if err := f.durable.file(tmp); err != nil {
		discard(tmp)
		return err
	}
	dropCache(tmp)
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	// CreateTemp makes files 0600; blobs are ordinary readable files.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := f.durable.rename(tmp.Name(), target); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func discard(tmp *os.File) {
	tmp.Close()
	os.Remove(tmp.Name())
}

// Get implements Store.
func (f *File) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, fmt.Errorf("blob: get: %w", err)
	}
	file, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob: get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: get %s: %w", key, err)
	}
	return file, nil
}

// Exists implements Store.
func (f *File) Exists(ctx context.Context, key string) (bool, error) {
	p, err := f.path(key)
	if err != nil {
		return false, fmt.Errorf("blob: exists: %w", err)
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("blob: exists %s: %w", key, err)
	}
	return st.Mode().IsRegular(), nil
}

// Ping implements Store: the root must still be a writable directory.
func (f *File) Ping(ctx context.Context) error {
	st, err := os.Stat(f.dir)
	if err != nil {
		return fmt.Errorf("blob: ping: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("blob: ping: %s is not a directory", f.dir)
	}
	tmp, err := os.CreateTemp(f.dir, tempPrefix+"ping-*")
	if err != nil {
		return fmt.Errorf("blob: ping: %w", err)
	}
	discard(tmp)
	return nil
}

// putContent is the file store's PutContent: hash while writing a
// temporary file, then rename it to its content address unless that
// already exists.
func (f *File) putContent(ctx context.Context, r io.Reader) (string, string, int64, error) {
	tmp, err := f.createTemp(f.dir)
	if err != nil {
		return "", "", 0, err
	}
	sum, size, err := copyHashed(ctx, tmp, r)
	if err != nil {
		discard(tmp)
		return "", "", 0, err
	}
	key := ContentKey(sum)
	target, _ := f.path(key) // ContentKey always yields a valid key
	if _, err := os.Stat(target); err == nil {
		discard(tmp)
		// The caller is about to announce the key, so the name must be
		// durable, and another upload of the same bytes may have renamed
		// it only a moment ago.
		if err := f.durable.existing(target); err != nil {
			return "", "", 0, err
		}
		return key, sum, size, nil
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		discard(tmp)
		return "", "", 0, err
	}
	// Two writers racing on the same content both rename identical bytes
	// to the same name; either result is correct.
	if err := f.commit(tmp, target); err != nil {
		return "", "", 0, err
	}
	return key, sum, size, nil
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
