package blob

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// newDurability syncs in groups on Linux (see groupSync).
func newDurability(root string) durability { return &groupSync{root: root, flush: syncfs} }

// groupSync makes the writes of many concurrent uploads durable with one
// syncfs(2) per round instead of two fsyncs per upload. Each fsync ends
// in a disk cache flush, and where the file system has no journal to
// group them (ext4 without one, as on the virtual machines we measured),
// fifty concurrent uploads queue a hundred flushes behind each other and
// behind the embedded broker's: grouped, the upload benchmark's
// throughput rose by 40% (BenchmarkUpload). syncfs writes back everything
// dirty on the file system, so it is meant for a data folder of
// prismflow's own, where everything written is synced anyway.
//
// A caller joins the next round, never one in progress, whose writeback
// may have started before the caller's write. No goroutine is left when
// idle: the first caller of a quiet store starts the rounds and the last
// round ends them.
type groupSync struct {
	root  string
	flush func(root string) error // syncfs; tests count rounds

	mu      sync.Mutex
	running bool
	waiting []chan error
	// settled is set by the first round that succeeds: names an earlier
	// process left (perhaps renamed just before it died) are durable
	// from then on. renaming counts renames whose round has not ended.
	// Once settled, while renaming is zero, every name in the store is
	// durable, and a writer that finds its bytes already stored (the
	// same file uploaded again) need not wait for a round.
	settled  bool
	renaming int
}

func (g *groupSync) file(*os.File) error { return g.sync() }

func (g *groupSync) rename(tmp, target string) error {
	g.mu.Lock()
	g.renaming++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.renaming--
		g.mu.Unlock()
	}()
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	return g.sync()
}

func (g *groupSync) existing(string) error {
	g.mu.Lock()
	durable := g.settled && g.renaming == 0
	g.mu.Unlock()
	if durable {
		return nil
	}
	return g.sync()
}

func (g *groupSync) sync() error {
	done := make(chan error, 1)
	g.mu.Lock()
	g.waiting = append(g.waiting, done)
	if !g.running {
		g.running = true
		go g.rounds()
	}
	g.mu.Unlock()
	return <-done
}

func (g *groupSync) rounds() {
	for {
		g.mu.Lock()
		round := g.waiting
		g.waiting = nil
		if len(round) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := g.flush(g.root)
		if err == nil {
			g.mu.Lock()
			g.settled = true
			g.mu.Unlock()
		}
		for _, done := range round {
			done <- err
		}
	}
}

// syncfs writes back and flushes the file system holding path. Since
// Linux 5.8 it also reports any write-back error on that file system
// since the descriptor was opened.
func syncfs(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// dropCache asks the kernel to forget f's pages, which must be durable
// (clean) already. A blob is written once and read back later, if at
// all, by a stage that may well run elsewhere; kept in the page cache, a
// steady stream of uploads would evict what is worth caching
// (PostgreSQL's pages, blobs being read) and, on a virtual machine,
// touch fresh guest memory at every write, which cost a fifth of the CPU
// of the upload benchmark. It is advice: an error changes nothing.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
