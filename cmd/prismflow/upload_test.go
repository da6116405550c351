package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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
