package pipeline

import (
	"context"
	"fmt"

	"prismflow/schemas/events"
)

// Stage is one consumer group: the routes it reads, the topic it writes
// and how many records it handles at once.
type Stage struct {
	// Name identifies the stage in metrics, logs and event metadata; the
	// consumer group is "prismflow-<Name>".
	Name string
	// Version is stamped into every output event (Meta.StageVersion) so a
	// replay can tell which code produced what.
	Version string
	// Routes hold one handler per input topic. A stage is either all
	// Transform/TransformMany routes (with Output set) or all Sink routes.
	Routes []Route
	// Output is the topic transform routes produce to; "" for sinks.
	Output string
	// Concurrency is how many records are handled in parallel; records
	// with the same key are never handled concurrently. 0 = GOMAXPROCS.
	Concurrency int
	// BatchSize overrides the runtime's records per transaction. A batch
	// commits when its slowest record is done, so a stage whose records
	// take seconds (OCR) wants batches of about its concurrency, while a
	// fast stage wants large ones to spread the cost of a commit.
	// 0 = the runtime's Config.BatchSize.
	BatchSize int
}

// Group is the consumer group id of the stage.
func (s Stage) Group() string { return "prismflow-" + s.Name }

// Route binds an input topic to a typed handler. Build one with
// Transform, TransformMany or Sink; the zero Route is invalid.
type Route struct {
	Topic string

	// newIn returns a fresh *In to decode into.
	newIn func() events.Event
	// call runs the handler on a decoded *In. Transforms return the
	// handler's *Out values (which have SetMeta); sinks return nil.
	call func(ctx context.Context, in events.Event) ([]metaSetter, error)
	sink bool
	// ownKeys keys each output by its own document id instead of the
	// input record's key: the outputs of a fan-out are other documents,
	// and each must land on its own document's partition.
	ownKeys bool
}

// metaSetter is an output event the runtime can stamp.
type metaSetter interface {
	events.Event
	SetMeta(events.Meta)
}

// Transform adapts a typed handler that turns one In event into one Out
// event. The runtime decodes In from topic, calls h, stamps Out's Meta and
// produces it to the stage's Output topic in the same transaction that
// commits the input offset. PIn and POut are inferred:
//
//	pipeline.Transform(topics.TextExtracted, splitter.Handle)
func Transform[In, Out any, PIn interface {
	*In
	events.Event
}, POut interface {
	*Out
	events.Event
	SetMeta(events.Meta)
}](topic string, h func(context.Context, In) (Out, error)) Route {
	return Route{
		Topic: topic,
		newIn: func() events.Event { return PIn(new(In)) },
		call: func(ctx context.Context, in events.Event) ([]metaSetter, error) {
			p, ok := in.(PIn)
			if !ok {
				return nil, fmt.Errorf("route %s: decoded %T, want %T", topic, in, PIn(nil))
			}
			out, err := h(ctx, *p)
			if err != nil {
				return nil, err
			}
			return []metaSetter{POut(&out)}, nil
		},
	}
}

// TransformMany adapts a typed handler that turns one In event into zero,
// one or many Out events, each about a document of its own (an e-mail's
// attachments, say). All outputs are produced in the transaction that
// commits the input offset, so a crash yields all of them or none. Unlike
// Transform, each output is keyed by its own Doc().ID, not by the input's
// key, so a child document's events share a partition with each other
// and not with its parent's; an output without a document id is a
// handler bug and fails the record permanently. A replay hands h the same
// input again: h must derive its outputs' ids from the input (not from a
// clock or random source) for a replay to yield the same documents.
func TransformMany[In, Out any, PIn interface {
	*In
	events.Event
}, POut interface {
	*Out
	events.Event
	SetMeta(events.Meta)
}](topic string, h func(context.Context, In) ([]Out, error)) Route {
	return Route{
		Topic:   topic,
		ownKeys: true,
		newIn:   func() events.Event { return PIn(new(In)) },
		call: func(ctx context.Context, in events.Event) ([]metaSetter, error) {
			p, ok := in.(PIn)
			if !ok {
				return nil, fmt.Errorf("route %s: decoded %T, want %T", topic, in, PIn(nil))
			}
			outs, err := h(ctx, *p)
			if err != nil {
				return nil, err
			}
			res := make([]metaSetter, len(outs))
			for i := range outs {
				res[i] = POut(&outs[i])
			}
			return res, nil
		},
	}
}

// Sink adapts a typed handler that consumes In events and writes them
// somewhere outside Kafka. The handler must be idempotent: a record is
// committed only after h returned, so a crash in between hands it to h
// again.
func Sink[In any, PIn interface {
	*In
	events.Event
}](topic string, h func(context.Context, In) error) Route {
	return Route{
		Topic: topic,
		sink:  true,
		newIn: func() events.Event { return PIn(new(In)) },
		call: func(ctx context.Context, in events.Event) ([]metaSetter, error) {
			p, ok := in.(PIn)
			if !ok {
				return nil, fmt.Errorf("route %s: decoded %T, want %T", topic, in, PIn(nil))
			}
			return nil, h(ctx, *p)
		},
	}
}

// validate reports what makes s unrunnable.
func (s Stage) validate() error {
	if s.Name == "" {
		return fmt.Errorf("stage without a name")
	}
	if len(s.Routes) == 0 {
		return fmt.Errorf("stage %s: no routes", s.Name)
	}
	seen := make(map[string]bool, len(s.Routes))
	sinks := 0
	for _, r := range s.Routes {
		if r.Topic == "" || r.call == nil || r.newIn == nil {
			return fmt.Errorf("stage %s: route %q not built with Transform, TransformMany or Sink", s.Name, r.Topic)
		}
		if seen[r.Topic] {
			return fmt.Errorf("stage %s: two routes for topic %s", s.Name, r.Topic)
		}
		seen[r.Topic] = true
		if r.sink {
			sinks++
		}
	}
	switch {
	case sinks == len(s.Routes) && s.Output != "":
		return fmt.Errorf("stage %s: sink stage with output topic %s", s.Name, s.Output)
	case sinks == 0 && s.Output == "":
		return fmt.Errorf("stage %s: transform stage without output topic", s.Name)
	case sinks != 0 && sinks != len(s.Routes):
		return fmt.Errorf("stage %s: mixes transform and sink routes", s.Name)
	}
	return nil
}

func (s Stage) isSink() bool { return s.Routes[0].sink }
