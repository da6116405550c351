package blob

import (
	"os"
	"path/filepath"
)

// durability is how a file store makes its writes survive a power cut:
// the bytes of a temporary file before it is renamed into place (so that
// a name never points at bytes that may be lost), then the directory
// entry the rename made.
type durability interface {
	// file makes f's bytes durable; f stays open.
	file(f *os.File) error
	// rename moves a durable temporary file to target and makes the new
	// name durable.
	rename(tmp, target string) error
	// existing makes sure that target, found already in place, is
	// durable: another writer may have renamed it a moment ago.
	existing(target string) error
}

// fsyncEach syncs every file and directory on its own: what POSIX
// promises everywhere, and cheap where the file system's journal groups
// concurrent fsyncs into one disk flush.
type fsyncEach struct{}

func (fsyncEach) file(f *os.File) error { return f.Sync() }

func (fsyncEach) rename(tmp, target string) error {
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	return syncDir(filepath.Dir(target))
}

func (fsyncEach) existing(target string) error { return syncDir(filepath.Dir(target)) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
