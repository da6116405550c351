package blob

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeS3 speaks the part of the S3 REST API (path style) that the S3
// store uses: objects, HeadBucket and multipart uploads. Real S3 or
// MinIO cannot run in this test environment; the client code under test
// is the real aws-sdk-go-v2 one.
type fakeS3 struct {
	bucket string

	mu       sync.Mutex
	objects  map[string][]byte
	uploads  map[string]map[int][]byte
	nextID   int
	maxBody  int // largest request body seen
	requests []string
}

func newFakeS3(bucket string) *fakeS3 {
	return &fakeS3{bucket: bucket, objects: map[string][]byte{}, uploads: map[string]map[int][]byte{}}
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s3Error(w, http.StatusForbidden, "AccessDenied")
		return
	}
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
		s3Error(w, http.StatusNotImplemented, "NotImplemented") // MinIO-like servers may lack it
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if bucket != f.bucket {
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s3Error(w, http.StatusBadRequest, "IncompleteBody")
		return
	}
	f.maxBody = max(f.maxBody, len(body))
	q := r.URL.Query()
	switch {
	case key == "" && r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.nextID++
		id := strconv.Itoa(f.nextID)
		f.uploads[id] = map[int][]byte{}
		fmt.Fprintf(w, `<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>`, bucket, key, id)
	case r.Method == http.MethodPut && q.Has("uploadId"):
		parts, ok := f.uploads[q.Get("uploadId")]
		n, err := strconv.Atoi(q.Get("partNumber"))
		if !ok || err != nil {
			s3Error(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		parts[n] = body
		w.Header().Set("ETag", fmt.Sprintf(`"part-%d"`, n))
	case r.Method == http.MethodPost && q.Has("uploadId"):
		parts, ok := f.uploads[q.Get("uploadId")]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		var done struct {
			Parts []struct{ PartNumber int } `xml:"Part"`
		}
		if err := xml.Unmarshal(body, &done); err != nil {
			s3Error(w, http.StatusBadRequest, "MalformedXML")
			return
		}
		var all []byte
		for _, p := range done.Parts {
			all = append(all, parts[p.PartNumber]...)
		}
		f.objects[key] = all
		delete(f.uploads, q.Get("uploadId"))
		fmt.Fprintf(w, `<CompleteMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><ETag>"x"</ETag></CompleteMultipartUploadResult>`, bucket, key)
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		delete(f.uploads, q.Get("uploadId"))
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		f.objects[key] = body
		w.Header().Set("ETag", `"x"`)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		b, ok := f.objects[key]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	default:
		s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
}

func (f *fakeS3) object(key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[key]
	return b, ok
}

func (f *fakeS3) count(method, prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, method+" "+prefix) {
			n++
		}
	}
	return n
}

func openFakeS3(t *testing.T, bucket string) (Store, *fakeS3) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	fake := newFakeS3(bucket)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	s, err := Open(context.Background(), "s3://"+bucket+"/pre/fix?endpoint="+srv.URL+"&region=eu-south-1&path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	return s, fake
}

func TestS3Store(t *testing.T) {
	ctx := context.Background()
	s, fake := openFakeS3(t, "docs")
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Put(ctx, "texts/a.txt", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if b, ok := fake.object("pre/fix/texts/a.txt"); !ok || string(b) != "hello" {
		t.Fatalf("object under prefix = %q, %v", b, ok)
	}
	if got := readAll(t, s, "texts/a.txt"); string(got) != "hello" {
		t.Fatalf("Get = %q", got)
	}
	if ok, err := s.Exists(ctx, "texts/a.txt"); err != nil || !ok {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if ok, err := s.Exists(ctx, "texts/missing.txt"); err != nil || ok {
		t.Fatalf("Exists(missing) = %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, "texts/missing.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "../x", strings.NewReader("x")); err == nil {
		t.Fatal("Put(../x) succeeded")
	}

	other, _ := openFakeS3(t, "other")
	// Point the second store's bucket at a server that does not have it.
	if s3s, ok := other.(*S3); ok {
		s3s.bucket = "nope"
	}
	if err := other.Ping(ctx); err == nil {
		t.Fatal("Ping of a missing bucket succeeded")
	}
}

// TestS3StreamsLargeUnknownSize checks that a body of unknown size larger
// than one part goes up as a multipart upload, so no request holds the
// whole file.
func TestS3StreamsLargeUnknownSize(t *testing.T) {
	ctx := context.Background()
	s, fake := openFakeS3(t, "docs")
	data := make([]byte, 12<<20+5)
	rand.NewChaCha8([32]byte{7}).Read(data)
	// io.MultiReader hides the size and Seek, as a network body would.
	key, sum, size, err := PutContent(ctx, s, io.MultiReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) {
		t.Fatalf("size = %d", size)
	}
	if !strings.HasSuffix(key, sum) {
		t.Fatalf("key %q does not end with its sha256 %s", key, sum)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, data) {
		t.Fatal("stored bytes differ")
	}
	if fake.maxBody >= len(data) {
		t.Fatalf("largest request body %d bytes: the upload was not split into parts", fake.maxBody)
	}
	// The same content again is not uploaded a second time.
	puts := fake.count(http.MethodPut, "/docs/")
	if _, _, _, err := PutContent(ctx, s, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if again := fake.count(http.MethodPut, "/docs/"); again != puts {
		t.Fatalf("PUT requests grew from %d to %d for content already stored", puts, again)
	}
	var keys []string
	fake.mu.Lock()
	for k := range fake.objects {
		keys = append(keys, k)
	}
	fake.mu.Unlock()
	if want := []string{"pre/fix/" + key}; !slices.Equal(keys, want) {
		t.Fatalf("objects = %v, want %v", keys, want)
	}
}
