package pages

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// cacheExt names the cached images; anything else in the folder is not
// the cache's and is left alone, except its own unfinished temporary
// files.
const (
	cacheExt = ".png"
	tempExt  = ".tmp"
)

// diskCache is a folder of files, indexed in memory in least recently
// used order and bounded by their total size.
type diskCache struct {
	dir string
	max int64
	log *slog.Logger

	mu    sync.Mutex
	size  int64
	ll    *list.List // of *cacheEntry, most recently used first
	items map[string]*list.Element
}

type cacheEntry struct {
	key  string
	size int64
}

// openCache indexes the images already in dir, oldest use first, and
// trims the folder to max.
func openCache(dir string, max int64, log *slog.Logger) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("page cache %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("page cache %s: %w", dir, err)
	}
	type found struct {
		key  string
		size int64
		used time.Time
	}
	var files []found
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasSuffix(name, tempExt) {
			// Left by a crash between write and rename.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if !strings.HasSuffix(name, cacheExt) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, found{strings.TrimSuffix(name, cacheExt), info.Size(), info.ModTime()})
	}
	slices.SortFunc(files, func(a, b found) int { return a.used.Compare(b.used) })
	c := &diskCache{dir: dir, max: max, log: log, ll: list.New(), items: map[string]*list.Element{}}
	for _, f := range files {
		c.items[f.key] = c.ll.PushFront(&cacheEntry{f.key, f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

func (c *diskCache) path(key string) string { return filepath.Join(c.dir, key+cacheExt) }

// get returns the cached bytes of key and marks them used.
func (c *diskCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	el, ok := c.items[key]
	if ok {
		c.ll.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		// Evicted between the lookup and the read, or removed by hand.
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("pages: read cached image", "err", err)
		}
		c.drop(key)
		return nil, false
	}
	// The modification time records use, for the order rebuilt at the
	// next start; losing it only makes that order coarser.
	now := time.Now()
	_ = os.Chtimes(c.path(key), now, now)
	return b, true
}

// put stores b under key (atomically: a reader sees all of it or
// nothing) and evicts the least recently used images over the budget.
// An image larger than the whole budget is not kept.
func (c *diskCache) put(key string, b []byte) error {
	n := int64(len(b))
	if n > c.max {
		return nil
	}
	tmp, err := os.CreateTemp(c.dir, key+"-*"+tempExt)
	if err != nil {
		return fmt.Errorf("page cache: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(key))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("page cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		c.size += n - e.size
		e.size = n
		c.ll.MoveToFront(el)
	} else {
		c.items[key] = c.ll.PushFront(&cacheEntry{key, n})
		c.size += n
	}
	c.evictLocked()
	return nil
}

// drop forgets key (its file is gone).
func (c *diskCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.size -= el.Value.(*cacheEntry).size
		c.ll.Remove(el)
		delete(c.items, key)
	}
}

// evictLocked removes least recently used images until the cache fits.
func (c *diskCache) evictLocked() {
	for c.size > c.max {
		el := c.ll.Back()
		if el == nil {
			return
		}
		e := el.Value.(*cacheEntry)
		if err := os.Remove(c.path(e.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("pages: evict cached image", "err", err)
		}
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.size -= e.size
	}
}

// stats returns the images and bytes held.
func (c *diskCache) stats() (n int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.size
}
