//go:build !linux

package blob

import "os"

// newDurability syncs each file and directory where syncfs(2) is missing.
func newDurability(string) durability { return fsyncEach{} }

// dropCache is advice these systems do without.
func dropCache(*os.File) {}
