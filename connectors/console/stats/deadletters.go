package stats

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
)

// deadLetterCounter counts the dead-letter topic's records per stage with
// a direct consumer that reads the topic from its start and then follows
// it. The runtime stamps every dead letter with the failing stage's
// header, so nothing is decoded.
type deadLetterCounter struct {
	base  *kgo.Client
	topic string
	log   *slog.Logger

	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	by     map[string]int64
	closed bool
}

func newDeadLetterCounter(base *kgo.Client, topic string, log *slog.Logger) *deadLetterCounter {
	return &deadLetterCounter{base: base, topic: topic, log: log, by: map[string]int64{}}
}

// start starts the consumer, once.
func (d *deadLetterCounter) start() {
	d.once.Do(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel, d.done = cancel, make(chan struct{})
		go func() {
			defer close(d.done)
			d.run(ctx)
		}()
	})
}

// close stops the consumer and waits for it.
func (d *deadLetterCounter) close() {
	d.mu.Lock()
	d.closed = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (d *deadLetterCounter) counts() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.by)
}

func (d *deadLetterCounter) run(ctx context.Context) {
	if g, _ := d.base.OptValue(kgo.ConsumerGroup).(string); g != "" {
		d.log.ErrorContext(ctx, "stats: cannot count dead letters with a group client", "group", g)
		return
	}
	cl, err := kgo.NewClient(append(d.base.Opts(),
		kgo.ConsumeTopics(d.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(time.Second),
	)...)
	if err != nil {
		d.log.ErrorContext(ctx, "stats: dead-letter consumer", "err", err)
		return
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				d.log.DebugContext(ctx, "stats: fetch dead letters", "partition", p, "err", err)
			}
		})
		d.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == pipeline.HeaderStage {
					d.by[string(h.Value)]++
					return
				}
			}
		})
		d.mu.Unlock()
	}
}
