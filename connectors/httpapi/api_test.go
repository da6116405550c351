package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"prismflow/connectors/blob"
	"prismflow/schemas/events"
	"prismflow/stages/ingest"
)

func newServer(t *testing.T) (*httptest.Server, *[]events.DocumentReceived, *bytes.Buffer) {
	t.Helper()
	store, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var published []events.DocumentReceived
	var logs bytes.Buffer
	s := &Server{
		Ingest: &ingest.Ingester{Blobs: store, MaxBytes: 1 << 20, Publish: func(_ context.Context, ev events.DocumentReceived) error {
			published = append(published, ev)
			return nil
		}},
		Blobs: store,
		Log:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, &published, &logs
}

// multipartBody is a form with the given fields in order; a field named
// "file" is sent as a file part.
func multipartBody(t *testing.T, fields ...[2]string) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		var w io.Writer
		var err error
		if f[0] == "file" {
			w, err = mw.CreateFormFile("file", "note.txt")
		} else {
			w, err = mw.CreateFormField(f[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, f[1])
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

func TestUploadPassword(t *testing.T) {
	pdf, err := os.ReadFile("../../../shared/corpus/real/005-libreoffice-writer-password/libreoffice-writer-password.pdf")
	if err != nil {
		t.Fatalf("shared corpus missing: %v", err)
	}
	tests := []struct {
		name  string
		req   func(base string) *http.Request
		want  string
		bytes int
	}{
		{"multipart field before the file", func(base string) *http.Request {
			body, ct := multipartBody(t, [2]string{"password", "openpassword"}, [2]string{"file", string(pdf)})
			r, _ := http.NewRequest(http.MethodPost, base+"/v1/documents", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, "openpassword", len(pdf)},
		{"query with multipart", func(base string) *http.Request {
			body, ct := multipartBody(t, [2]string{"file", string(pdf)})
			r, _ := http.NewRequest(http.MethodPost, base+"/v1/documents?password=q%26p", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, "q&p", len(pdf)},
		{"query with raw body", func(base string) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, base+"/v1/documents?filename=a.pdf&password=raw", bytes.NewReader(pdf))
			return r
		}, "raw", len(pdf)},
		{"none", func(base string) *http.Request {
			body, ct := multipartBody(t, [2]string{"file", "hello"})
			r, _ := http.NewRequest(http.MethodPost, base+"/v1/documents", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, "", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, published, logs := newServer(t)
			resp, err := http.DefaultClient.Do(tt.req(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %s: %s", resp.Status, b)
			}
			if len(*published) != 1 {
				t.Fatalf("%d events published", len(*published))
			}
			ev := (*published)[0]
			if ev.Password != tt.want || ev.Document.SizeBytes != int64(tt.bytes) {
				t.Errorf("password %q size %d, want %q %d", ev.Password, ev.Document.SizeBytes, tt.want, tt.bytes)
			}
			if tt.want != "" && strings.Contains(logs.String(), tt.want) {
				t.Errorf("the password was logged:\n%s", logs)
			}
		})
	}
}

func TestUploadErrorsAreJSON(t *testing.T) {
	long, ct := multipartBody(t, [2]string{"password", strings.Repeat("p", maxPasswordBytes+1)}, [2]string{"file", "hello"})
	noFile, ct2 := multipartBody(t, [2]string{"password", "x"})
	tests := []struct {
		name string
		body io.Reader
		ct   string
		url  string
		code int
	}{
		{"password too long", long, ct, "/v1/documents", http.StatusBadRequest},
		{"no file", noFile, ct2, "/v1/documents", http.StatusBadRequest},
		{"raw without filename", strings.NewReader("hello"), "application/octet-stream", "/v1/documents?password=x", http.StatusBadRequest},
		{"unsupported type", strings.NewReader("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), "image/gif", "/v1/documents?filename=a.gif", http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, published, _ := newServer(t)
			resp, err := http.Post(srv.URL+tt.url, tt.ct, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error string `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == "" {
				t.Errorf("body is not a JSON error: %v", err)
			}
			if resp.StatusCode != tt.code || len(*published) != 0 {
				t.Errorf("status %d (%s), %d published; want %d, none", resp.StatusCode, e.Error, len(*published), tt.code)
			}
		})
	}
}

// TestOpsProfiler checks that Go's profiler is served only when asked
// for: it is unauthenticated and shows the process's internals.
func TestOpsProfiler(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := httptest.NewServer(Ops{Profile: on}.Handler())
		resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		switch {
		case on && (resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile")):
			t.Errorf("profiler on: %s\n%.200s", resp.Status, body)
		case !on && resp.StatusCode != http.StatusNotFound:
			t.Errorf("profiler off: %s, want 404", resp.Status)
		}
	}
}
