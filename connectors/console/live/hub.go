package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline/topology"
	"prismflow/schemas"
)

// StatusFunc returns the persisted status (processing, done or failed) of
// a tenant's document; persist.Store's Summary or Document fit it.
type StatusFunc func(ctx context.Context, tenant, id string) (string, error)

// Option configures a Hub.
type Option func(*Hub)

// WithStatusLookup makes the hub confirm "done" against the store before
// it sends it (see the package doc). Without it the final event is sent
// as done at once.
func WithStatusLookup(f StatusFunc) Option { return func(h *Hub) { h.status = f } }

// WithBuffer sets how many updates wait for a slow subscriber before
// further ones are dropped for it. Default 64.
func WithBuffer(n int) Option {
	return func(h *Hub) {
		if n > 0 {
			h.buffer = n
		}
	}
}

// WithHeartbeat sets how often ServeSSE writes a comment line on an idle
// stream, so proxies and browsers keep it open and a gone client is
// noticed. Default 15s.
func WithHeartbeat(d time.Duration) Option {
	return func(h *Hub) {
		if d > 0 {
			h.heartbeat = d
		}
	}
}

// WithConfirmWindow sets how long the hub keeps asking the status lookup
// whether a rendered document is done. Default 30s.
func WithConfirmWindow(d time.Duration) Option {
	return func(h *Hub) {
		if d > 0 {
			h.confirmFor = d
		}
	}
}

// WithFinalTopic names the topic whose events end a document's
// processing. Default: topology.FormRendered.
func WithFinalTopic(t string) Option { return func(h *Hub) { h.final = t } }

// WithDeadLetterTopic names the dead-letter topic. Default:
// topology.DeadLetter.
func WithDeadLetterTopic(t string) Option { return func(h *Hub) { h.deadLetter = t } }

// Hub reads the pipeline's topics and fans their events out to
// subscribers as Updates. Create it with NewHub, start it with Run, and
// Subscribe (or ServeSSE) from any goroutine, before or while it runs.
type Hub struct {
	base       *kgo.Client
	codec      *schemas.Codec
	topics     []string
	final      string
	deadLetter string
	log        *slog.Logger

	status     StatusFunc
	buffer     int
	heartbeat  time.Duration
	confirmFor time.Duration
	// rescan is how often Run looks for topics and partitions that were
	// not there when it started.
	rescan time.Duration

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	stopped bool // Run has returned; new subscriptions start closed

	ready     chan struct{}
	readyOnce sync.Once
}

// NewHub returns a hub reading topics (nil: every topology topic) with
// codec. cl supplies the connection settings (seed brokers, SASL, TLS):
// Run builds its own direct consumer (no group) from cl.Opts() and closes
// it when it returns, so cl stays the caller's and may be the process's
// shared client. cl must not be a group consumer.
func NewHub(cl *kgo.Client, codec *schemas.Codec, topics []string, log *slog.Logger, opts ...Option) *Hub {
	if log == nil {
		log = slog.Default()
	}
	if topics == nil {
		topics = topology.Topics
	}
	h := &Hub{
		base:       cl,
		codec:      codec,
		topics:     topics,
		final:      topology.FormRendered,
		deadLetter: topology.DeadLetter,
		log:        log,
		buffer:     64,
		heartbeat:  15 * time.Second,
		confirmFor: 30 * time.Second,
		rescan:     30 * time.Second,
		subs:       map[*subscription]struct{}{},
		ready:      make(chan struct{}),
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Ready is closed once Run has positioned its consumer at the end of the
// topics: every event committed after that reaches the subscribers.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run consumes until ctx is cancelled, then closes its consumer and
// returns nil; it returns an error only if it cannot start. It waits for
// at least one of its topics to exist. Call it once.
//
// When Run returns, every subscription ends (its channel is closed, and
// ServeSSE streams end), and a Subscribe after that returns a closed
// channel: a stopping HTTP server is not held open by event streams.
func (h *Hub) Run(ctx context.Context) error {
	defer h.stop()
	if g, _ := h.base.OptValue(kgo.ConsumerGroup).(string); g != "" {
		return fmt.Errorf("live: the hub needs a client without a consumer group, got group %q", g)
	}
	adm := kadm.NewClient(h.base)
	start, err := h.waitPositions(ctx, adm)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cl, err := kgo.NewClient(append(h.base.Opts(),
		kgo.ConsumePartitions(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("live: consumer: %w", err)
	}
	defer cl.Close()
	h.readyOnce.Do(func() { close(h.ready) })

	conf := newConfirmer(h)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); conf.run(ctx) }()
	// kgo keeps the map it was given; the watcher tracks its own copy.
	go func() { defer wg.Done(); h.watchPartitions(ctx, adm, cl, cloneOffsets(start)) }()
	defer wg.Wait()

	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				h.log.WarnContext(ctx, "live: fetch", "topic", t, "partition", p, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			u, ok := h.update(ctx, r)
			if !ok {
				return
			}
			h.broadcast(u)
			if r.Topic == h.final && u.Status == StatusProcessing {
				conf.add(u)
			}
		})
	}
}

// offsets maps topic → partition → where to start.
type offsets = map[string]map[int32]kgo.Offset

// positions lists the last stable offset of every partition of the
// topics that exist: consuming from there skips everything committed
// before and waits for open transactions to commit.
func (h *Hub) positions(ctx context.Context, adm *kadm.Client) (offsets, error) {
	listed, err := adm.ListCommittedOffsets(ctx, h.topics...)
	if err != nil {
		return nil, fmt.Errorf("live: end offsets of %v: %w", h.topics, err)
	}
	out := offsets{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Partition < 0 {
			return // a topic that does not exist (yet)
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]kgo.Offset{}
		}
		out[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	return out, nil
}

// waitPositions polls positions until one of the topics exists.
func (h *Hub) waitPositions(ctx context.Context, adm *kadm.Client) (offsets, error) {
	wait := 250 * time.Millisecond
	for {
		pos, err := h.positions(ctx, adm)
		if err == nil && len(pos) > 0 {
			return pos, nil
		}
		if err != nil {
			h.log.WarnContext(ctx, "live: waiting for the broker", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// watchPartitions adds the partitions created after Run started, read
// from their start: everything on them is new.
func (h *Hub) watchPartitions(ctx context.Context, adm *kadm.Client, cl *kgo.Client, known offsets) {
	t := time.NewTicker(h.rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pos, err := h.positions(ctx, adm)
		if err != nil {
			continue
		}
		add := offsets{}
		for topic, ps := range pos {
			for p := range ps {
				if _, ok := known[topic][p]; ok {
					continue
				}
				if known[topic] == nil {
					known[topic] = map[int32]kgo.Offset{}
				}
				if add[topic] == nil {
					add[topic] = map[int32]kgo.Offset{}
				}
				known[topic][p] = kgo.NewOffset().AtStart()
				add[topic][p] = kgo.NewOffset().AtStart()
			}
		}
		if len(add) > 0 {
			h.log.InfoContext(ctx, "live: following new partitions", "partitions", len(add))
			cl.AddConsumePartitions(add)
		}
	}
}

func cloneOffsets(o offsets) offsets {
	out := make(offsets, len(o))
	for t, ps := range o {
		out[t] = maps.Clone(ps)
	}
	return out
}
