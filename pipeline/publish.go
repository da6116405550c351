package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/schemas/events"
)

// Publisher produces the first event of a document, where no stage has
// an input record to continue from: ingest, behind the HTTP API, the CLI
// and the IMAP connector. It starts the document's trace and run.
type Publisher struct {
	cl      *kgo.Client
	codec   Codec
	version string
}

// NewPublisher returns a publisher producing through cl. version is
// stamped as the producing stage's version.
func NewPublisher(cl *kgo.Client, codec Codec, version string) *Publisher {
	return &Publisher{cl: cl, codec: codec, version: version}
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
	if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}
