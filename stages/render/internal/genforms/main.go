// Command genforms rebuilds the render stage's form templates from their
// pdfcpu JSON page descriptions:
//
//	go generate ./stages/render
//
// runs it as `go run ./internal/genforms -src forms/src -out forms`. Each
// forms/src/<name>.json becomes forms/<name>.pdf, an AcroForm whose text
// fields carry the names of the extracted fields. The JSON is the source
// a broker edits (labels, layout, which fields a category asks for); the
// PDFs are committed so that the binary embeds them without running this.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

func main() {
	src := flag.String("src", "forms/src", "folder of pdfcpu JSON descriptions")
	out := flag.String("out", "forms", "folder the PDF templates are written to")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		slog.Error("genforms", "err", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	// pdfcpu would otherwise create its configuration folder in $HOME.
	model.ConfigPath = "disable"
	descs, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		return err
	}
	if len(descs) == 0 {
		return fmt.Errorf("no *.json in %s", src)
	}
	for _, d := range descs {
		desc, err := os.ReadFile(d)
		if err != nil {
			return err
		}
		var pdf bytes.Buffer
		if err := api.Create(nil, bytes.NewReader(desc), &pdf, model.NewDefaultConfiguration()); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		name := strings.TrimSuffix(filepath.Base(d), ".json") + ".pdf"
		if err := os.WriteFile(filepath.Join(out, name), pdf.Bytes(), 0o644); err != nil {
			return err
		}
		slog.Info("form template written", "src", d, "pdf", filepath.Join(out, name))
	}
	return nil
}
