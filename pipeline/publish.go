package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/schemas/events"
)

// Publisher produces the first event of a document, where no stage has
// an input record to continue from: ingest, behind the HTTP API, the CLI
// and the IMAP connector. It starts the document's trace and run.
//
// Many callers wait at once (an uploader waits for its 202), so the
// publisher commits in groups: one produce request at a time, carrying
// every record that arrived while the previous one was in flight. A
// broker handles a connection's requests one after another, and the
// embedded one syncs each partition's append to disk, so franz-go's
// usual five small requests in flight would queue at the broker and a
// record would wait for five of them instead of about one and a half.
// Records keep their document id key but are spread over partitions
// stickily, not by the key's hash, so that a request touches one
// partition instead of all: the first event of a document has no
// earlier event to stay in order with (a replay's run number, not its
// position, says which run is newest). BenchmarkPublish compares it with
// franz-go's ProduceSync.
type Publisher struct {
	cl      *kgo.Client
	codec   Codec
	version string

	mu      sync.Mutex
	pending []*publishing // waiting for the next produce request
	closed  bool
	wake    chan struct{} // pending has records; capacity 1
	closing chan struct{}
	done    chan struct{}
}

// publishing is one Publish call's record in the queue.
type publishing struct {
	ctx context.Context
	rec *kgo.Record
	err chan error // the broker's answer; capacity 1
}

var errPublisherClosed = errors.New("publisher closed")

// maxGroup bounds the records of one produce request; franz-go buffers
// at most 10,000 unless told otherwise.
const maxGroup = 1000

// NewPublisher returns a publisher with its own Kafka client, made with
// opts (brokers, TLS, SASL) and the producer settings above. version is
// stamped as the producing stage's version. Close it when done.
func NewPublisher(codec Codec, version string, opts ...kgo.Opt) (*Publisher, error) {
	cl, err := kgo.NewClient(append(slices.Clip(opts),
		kgo.ManualFlushing(), kgo.RecordPartitioner(kgo.StickyPartitioner()))...)
	if err != nil {
		return nil, fmt.Errorf("publisher: kafka client: %w", err)
	}
	p := &Publisher{
		cl: cl, codec: codec, version: version,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
	}
	go p.run()
	return p, nil
}

// Close sends what is queued, waits for its answers and closes the
// client; a later Publish fails. Closing again does nothing.
func (p *Publisher) Close() {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	if !first {
		return
	}
	close(p.closing)
	<-p.done
	p.cl.Close()
}

// Publish stamps ev's Meta as produced by stage, keys it by document id
// and returns once the broker acknowledged it, so a caller that got nil
// can promise the document will be processed.
func (p *Publisher) Publish(ctx context.Context, topic, stage string, ev interface {
	events.Documented
	SetMeta(events.Meta)
}) error {
	// The document's trace starts here, or in the caller's span (the
	// HTTP request of an upload) when tracing is on.
	tp := spanTraceparent(ctx)
	if tp == "" {
		tp = newTraceparent()
	}
	ev.SetMeta(events.Meta{Stage: stage, StageVersion: p.version, ProducedAt: time.Now().UTC(), TraceParent: tp, Run: 1})
	value, err := p.codec.Encode(ctx, topic, ev)
	if err != nil {
		return fmt.Errorf("publish %s: encode: %w", topic, err)
	}
	rec := &kgo.Record{
		Topic: topic,
		Key:   []byte(ev.Doc().ID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: traceparentHeader, Value: []byte(tp)},
			{Key: HeaderStage, Value: []byte(stage)},
		},
	}
	if err := p.produce(ctx, rec); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// produce queues rec for the next produce request and waits for the
// broker's answer. Like franz-go's ProduceSync it waits even if ctx ends
// once the record is sent, so a nil error always means acknowledged and
// an error means the record was not written, or, for an error the
// client gave up on, may not have been.
func (p *Publisher) produce(ctx context.Context, rec *kgo.Record) error {
	pub := &publishing{ctx: ctx, rec: rec, err: make(chan error, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errPublisherClosed
	}
	p.pending = append(p.pending, pub)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // already woken
	}
	return <-pub.err
}

// run sends the queue, one produce request at a time, until Close.
func (p *Publisher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.wake:
			p.flush()
		case <-p.closing:
			p.flush()
			return
		}
	}
}

// flush sends the queued records (at most maxGroup at a time) and waits
// for the broker's answers.
func (p *Publisher) flush() {
	for {
		p.mu.Lock()
		n := min(len(p.pending), maxGroup)
		group := slices.Clone(p.pending[:n])
		p.pending = slices.Delete(p.pending, 0, n)
		p.mu.Unlock()
		if n == 0 {
			return
		}
		for _, pub := range group {
			// A caller that gave up before its record was sent has it
			// failed with its context's error (franz-go checks the
			// record's context until the record is in a request).
			p.cl.Produce(pub.ctx, pub.rec, func(_ *kgo.Record, err error) { pub.err <- err })
		}
		// Flush returns once every record has its answer.
		_ = p.cl.Flush(context.Background())
	}
}
