package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestExpandPaths(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.pdf", "b.txt", "sub/c.pdf", ".hidden/d.pdf", "sub/.e.pdf"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := expandPaths([]string{filepath.Join(dir, "*.pdf"), filepath.Join(dir, "sub"), filepath.Join(dir, "a.pdf")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.pdf"), filepath.Join(dir, "sub", "c.pdf")}
	if !slices.Equal(got, want) {
		t.Errorf("expandPaths = %v, want %v (globs, folders without hidden files, no duplicates)", got, want)
	}
	if _, err := expandPaths([]string{filepath.Join(dir, "*.docx")}); err == nil {
		t.Error("a pattern matching nothing was accepted")
	}
	if _, err := expandPaths([]string{filepath.Join(dir, "missing.pdf")}); err == nil {
		t.Error("a missing file was accepted")
	}
}

// TestUploadCommandWaitsAndTabulates runs `prismflow upload --wait` on a
// folder and a glob against a running instance and reads its table.
func TestUploadCommandWaitsAndTabulates(t *testing.T) {
	shared := sharedDir(t)
	p := startPrismflow(t, "")
	folder := filepath.Join(shared, "corpus/real/015-arabic")
	glob := filepath.Join(shared, "corpus/real/00[12]-*/*.pdf")
	cmd := exec.Command(prismflowBinary(t), "upload", "--api", p.api, "--wait", "-j", "3", folder, glob)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1+5 || !strings.HasPrefix(lines[0], "FILE") {
		t.Fatalf("want a header and 5 rows (3 in the folder, 2 from the glob):\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, " done ") {
			t.Errorf("row not done: %s", l)
		}
	}
}

// TestUploadWaitsOutRateLimits: a 429 with Retry-After is waited out and
// the file sent again whole; other refusals are not retried.
func TestUploadWaitsOutRateLimits(t *testing.T) {
	var calls atomic.Int32
	var lastBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		_, file, err := r.FormFile("file")
		if err != nil {
			t.Errorf("call %d: %v", n, err)
			return
		}
		switch {
		case file.Filename == "bad.txt":
			http.Error(w, `{"error":"unsupported"}`, http.StatusUnsupportedMediaType)
		case n == 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"rate limit"}`, http.StatusTooManyRequests)
		default:
			f, _ := file.Open()
			b, _ := io.ReadAll(f)
			lastBody.Store(string(b))
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"doc-1"}`)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "ok.txt")
	if err := os.WriteFile(path, []byte("richiesta di quotazione"), 0o644); err != nil {
		t.Fatal(err)
	}
	var progress atomic.Int64
	c := &apiClient{base: srv.URL, http: srv.Client(), progress: func(n int) { progress.Add(int64(n)) }}
	res, err := c.upload(context.Background(), path, "")
	if err != nil || res.ID != "doc-1" || calls.Load() != 2 {
		t.Fatalf("upload: %+v %v after %d calls; want doc-1 after 2", res, err, calls.Load())
	}
	if got := lastBody.Load(); got != "richiesta di quotazione" {
		t.Errorf("retried body %q", got)
	}
	if progress.Load() != int64(len("richiesta di quotazione")) {
		t.Errorf("progress %d bytes, want the file counted once", progress.Load())
	}

	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	calls.Store(10)
	var se *statusError
	if _, err := c.upload(context.Background(), bad, ""); !errors.As(err, &se) || se.Code != http.StatusUnsupportedMediaType || calls.Load() != 11 {
		t.Errorf("a 415: %v after %d calls, want one call and the API's error", err, calls.Load()-10)
	}
}
