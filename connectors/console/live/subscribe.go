package live

import "sync/atomic"

// subscription is one subscriber's bounded queue.
type subscription struct {
	tenant  string
	ch      chan Update
	dropped atomic.Int64 // updates lost because ch was full
}

// Subscribe returns a channel of the updates of tenant ("" = every
// tenant) and a func that ends the subscription and closes the channel.
// The channel holds a bounded number of updates (WithBuffer); when the
// subscriber falls behind further updates are dropped for it, never
// waited for.
func (h *Hub) Subscribe(tenant string) (<-chan Update, func()) {
	s := h.subscribe(tenant)
	return s.ch, func() { h.unsubscribe(s) }
}

func (h *Hub) subscribe(tenant string) *subscription {
	s := &subscription{tenant: tenant, ch: make(chan Update, h.buffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		close(s.ch) // the hub has stopped: nothing more will come
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// unsubscribe is idempotent: the channel is closed once, under the lock
// broadcast sends under, so no send can reach a closed channel.
func (h *Hub) unsubscribe(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// broadcast hands u to every subscriber of its tenant without blocking.
func (h *Hub) broadcast(u Update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.tenant != "" && s.tenant != u.Tenant {
			continue
		}
		select {
		case s.ch <- u:
		default:
			s.dropped.Add(1)
		}
	}
}

// stop ends every subscription, so that SSE streams return and an HTTP
// server shutting down is not held open by them.
func (h *Hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}
