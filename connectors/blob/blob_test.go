package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func TestFileRoundTripAndReplace(t *testing.T) {
	ctx := context.Background()
	s, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := "texts/doc-1/page-3.txt"
	if ok, err := s.Exists(ctx, key); err != nil || ok {
		t.Fatalf("Exists before Put = %v, %v; want false, nil", ok, err)
	}
	if err := s.Put(ctx, key, strings.NewReader("old bytes")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, key); string(got) != "old bytes" {
		t.Fatalf("Get = %q", got)
	}
	// A reader that opened the old bytes keeps seeing them whole while the
	// key is replaced: the replace is a rename, not an overwrite in place.
	old, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := s.Put(ctx, key, strings.NewReader("new bytes, longer than before")); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(old); string(b) != "old bytes" {
		t.Fatalf("open reader saw %q after replace", b)
	}
	if got := readAll(t, s, key); string(got) != "new bytes, longer than before" {
		t.Fatalf("Get after replace = %q", got)
	}
	if ok, err := s.Exists(ctx, key); err != nil || !ok {
		t.Fatalf("Exists after Put = %v, %v", ok, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	assertNoTemps(t, s.Dir())
}

// failingReader fails after some bytes, like a client that disconnects.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("client went away")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestFileFailedPutKeepsOldBytes(t *testing.T) {
	ctx := context.Background()
	s, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", strings.NewReader("complete")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", &failingReader{n: 3}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if got := readAll(t, s, "a/b"); string(got) != "complete" {
		t.Fatalf("after failed Put, Get = %q", got)
	}
	assertNoTemps(t, s.Dir())
}

func TestFileNotFound(t *testing.T) {
	s, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(context.Background(), "missing/key")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

func TestKeysRefused(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFile(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		"", "../escape", "a/../../escape", "/etc/passwd", "a//b", "./a", "a/.",
		`a\..\b`, "a/.tmp-123", "nul\x00byte",
	} {
		t.Run(key, func(t *testing.T) {
			if err := s.Put(ctx, key, strings.NewReader("x")); err == nil {
				t.Errorf("Put(%q) succeeded", key)
			}
			if _, err := s.Get(ctx, key); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) error = %v, want a key error", key, err)
			}
			if _, err := s.Exists(ctx, key); err == nil {
				t.Errorf("Exists(%q) succeeded", key)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file escaped the store: %v", err)
	}
}

func TestPutContentDedupe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+17)
	rand.NewChaCha8([32]byte{1, 2}).Read(data)
	sum := sha256.Sum256(data)
	wantSum := hex.EncodeToString(sum[:])

	key1, sum1, size1, err := PutContent(ctx, s, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	key2, sum2, size2, err := PutContent(ctx, s, io.MultiReader(bytes.NewReader(data))) // not a *bytes.Reader
	if err != nil {
		t.Fatal(err)
	}
	if sum1 != wantSum || sum2 != wantSum {
		t.Fatalf("sha256 = %s, %s; want %s", sum1, sum2, wantSum)
	}
	if size1 != int64(len(data)) || size2 != size1 {
		t.Fatalf("size = %d, %d; want %d", size1, size2, len(data))
	}
	if want := "sha256/" + wantSum[:2] + "/" + wantSum; key1 != want || key2 != want {
		t.Fatalf("keys = %q, %q; want %q", key1, key2, want)
	}
	if got := readAll(t, s, key1); !bytes.Equal(got, data) {
		t.Fatal("stored bytes differ from the original")
	}
	files := regularFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files on disk = %v, want exactly one blob", files)
	}

	// Different bytes get a different blob.
	key3, _, _, err := PutContent(ctx, s, strings.NewReader("another file"))
	if err != nil {
		t.Fatal(err)
	}
	if key3 == key1 {
		t.Fatal("different content, same key")
	}
	if n := len(regularFiles(t, dir)); n != 2 {
		t.Fatalf("files on disk = %d, want 2", n)
	}
}

func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	for _, f := range regularFiles(t, dir) {
		if strings.HasPrefix(filepath.Base(f), tempPrefix) {
			t.Errorf("temporary file left behind: %s", f)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		url     string
		wantErr bool
	}{
		{"file://" + dir, false},
		{"file:relative/path", true},
		{"file://host/path", true},
		{"ftp://x/y", true},
		{"s3:///no-bucket", true},
		{"s3://bucket/p?path_style=maybe", true},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			s, err := Open(ctx, tc.url)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open(%q) = %v, %v; wantErr %v", tc.url, s, err, tc.wantErr)
			}
		})
	}
	s, err := Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := s.(*File); !ok || f.Dir() != dir {
		t.Fatalf("Open(file://%s) = %#v", dir, s)
	}
}
