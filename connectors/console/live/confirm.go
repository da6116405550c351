package live

import (
	"context"
	"sync"
	"time"
)

// Pauses between status lookups of one document: persist writes the row
// within milliseconds when it keeps up, within seconds under load.
const (
	firstPause    = 100 * time.Millisecond
	longestPause  = 2 * time.Second
	lookupTimeout = 5 * time.Second
	// maxPending bounds the documents awaiting confirmation; past it the
	// oldest is given up (its browser still sees it processing, and a
	// reload shows the truth).
	maxPending = 4096
)

// pending is a rendered document whose row is not yet known to be done.
type pending struct {
	u        Update
	next     time.Time
	pause    time.Duration
	deadline time.Time
}

type docRun struct {
	doc string
	run int32
}

// confirmer asks the status lookup, with growing pauses, whether rendered
// documents are done, and broadcasts the answer. One goroutine asks for
// all of them, so a slow store slows confirmations, never the consumer.
type confirmer struct {
	h    *Hub
	wake chan struct{}

	mu    sync.Mutex
	queue map[docRun]*pending
	order []docRun // insertion order, for giving up the oldest
}

func newConfirmer(h *Hub) *confirmer {
	return &confirmer{h: h, wake: make(chan struct{}, 1), queue: map[docRun]*pending{}}
}

// add queues u (an update of the final topic) for confirmation.
func (c *confirmer) add(u Update) {
	if c.h.status == nil {
		return
	}
	now := time.Now()
	k := docRun{u.Document, u.Run}
	c.mu.Lock()
	if _, ok := c.queue[k]; !ok {
		c.order = append(c.order, k)
	}
	c.queue[k] = &pending{u: u, next: now, pause: firstPause, deadline: now.Add(c.h.confirmFor)}
	for len(c.queue) > maxPending {
		oldest := c.order[0]
		c.order = c.order[1:]
		delete(c.queue, oldest)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *confirmer) run(ctx context.Context) {
	if c.h.status == nil {
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, wait := c.due(time.Now())
		for _, p := range due {
			c.check(ctx, p)
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// due removes and returns the documents to ask about now, and how long
// until the next one is due.
func (c *confirmer) due(now time.Time) ([]*pending, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*pending
	wait := time.Hour
	kept := c.order[:0]
	for _, k := range c.order {
		p, ok := c.queue[k]
		if !ok {
			continue
		}
		if !p.next.After(now) {
			out = append(out, p)
			delete(c.queue, k)
			continue
		}
		kept = append(kept, k)
		wait = min(wait, p.next.Sub(now))
	}
	c.order = kept
	return out, wait
}

// check asks for p's status once: a final status is broadcast, anything
// else is asked again later until p's deadline.
func (c *confirmer) check(ctx context.Context, p *pending) {
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	status, err := c.h.status(lctx, p.u.Tenant, p.u.Document)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err == nil && (status == StatusDone || status == StatusFailed) {
		u := p.u
		u.Status, u.Stage, u.At = status, "persist", time.Now().UTC()
		c.h.broadcast(u)
		return
	}
	now := time.Now()
	if now.After(p.deadline) {
		c.h.log.WarnContext(ctx, "live: rendered document not confirmed done in time",
			"document", p.u.Document, "status", status, "err", err)
		return
	}
	p.next, p.pause = now.Add(p.pause), min(2*p.pause, longestPause)
	c.mu.Lock()
	k := docRun{p.u.Document, p.u.Run}
	if _, ok := c.queue[k]; !ok { // a newer event of the same run replaces this one
		c.queue[k] = p
		c.order = append(c.order, k)
	}
	c.mu.Unlock()
}
