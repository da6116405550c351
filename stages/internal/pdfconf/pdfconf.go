// Package pdfconf hands out pdfcpu's configuration for every prismflow
// package that uses pdfcpu (extract decrypts and lists images, render
// fills and merges forms).
//
// pdfcpu creates a configuration folder in the user's home on first use
// unless its package variable model.ConfigPath says "disable". A service
// must not write there (it may be read-only), and prismflow needs only
// the built-in fonts. That variable is process-wide, so it is set here,
// once, instead of by each user of pdfcpu.
package pdfconf

import (
	"sync"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

var disableConfigDir = sync.OnceFunc(func() { model.ConfigPath = "disable" })

// New returns a fresh default configuration (callers may change it).
func New() *model.Configuration {
	disableConfigDir()
	return model.NewDefaultConfiguration()
}
