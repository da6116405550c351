package formats

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"

	"prismflow/pipeline"
)

// errNoEntry is returned by archive.read for an entry the archive lacks.
var errNoEntry = errors.New("no such entry")

// archive reads entries of an in-memory zip file within Limits. Every
// entry is refused by its declared uncompressed size before a byte is
// inflated, and inflating stops at that size, so a zip bomb costs neither
// memory nor time.
type archive struct {
	files  map[string]*zip.File
	budget int64 // uncompressed bytes still allowed
	lim    Limits
}

func openArchive(b []byte, lim Limits) (*archive, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("corrupt zip container: %w", err))
	}
	if len(zr.File) > lim.MaxZipEntries {
		return nil, pipeline.Permanent(fmt.Errorf("zip container lists %d entries, over the %d entry limit", len(zr.File), lim.MaxZipEntries))
	}
	a := &archive{files: make(map[string]*zip.File, len(zr.File)), budget: lim.MaxUnzippedBytes, lim: lim}
	for _, f := range zr.File {
		a.files[f.Name] = f
	}
	return a, nil
}

func (a *archive) has(name string) bool { return a.files[name] != nil }

// read inflates the entry name whole. Errors are permanent: they describe
// the file, which will not change on retry.
func (a *archive) read(name string) ([]byte, error) {
	f := a.files[name]
	if f == nil {
		return nil, pipeline.Permanent(fmt.Errorf("zip entry %s: %w", name, errNoEntry))
	}
	size := f.UncompressedSize64
	switch {
	case size > uint64(a.lim.MaxEntryBytes):
		return nil, pipeline.Permanent(fmt.Errorf("zip entry %s would inflate to %d bytes, over the %d byte limit (zip bomb?)", name, size, a.lim.MaxEntryBytes))
	case size > uint64(a.budget):
		return nil, pipeline.Permanent(fmt.Errorf("zip entry %s would take the archive over %d uncompressed bytes (zip bomb?)", name, a.lim.MaxUnzippedBytes))
	}
	a.budget -= int64(size)
	rc, err := f.Open()
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("corrupt zip entry %s: %w", name, err))
	}
	defer rc.Close()
	// archive/zip also refuses to inflate past the declared size; the
	// limit here makes that independent of its implementation.
	buf := make([]byte, 0, size)
	w := bytes.NewBuffer(buf)
	n, err := io.Copy(w, io.LimitReader(rc, int64(size)+1))
	switch {
	case err != nil:
		return nil, pipeline.Permanent(fmt.Errorf("corrupt zip entry %s: %w", name, err))
	case uint64(n) > size:
		return nil, pipeline.Permanent(fmt.Errorf("zip entry %s inflates past its declared %d bytes (zip bomb?)", name, size))
	}
	return w.Bytes(), nil
}
