package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"prismflow/schemas/events"
)

// stageRunner runs one stage: its sessions, batches and records.
type stageRunner struct {
	rt     *Runtime
	st     Stage
	routes map[string]Route
	lanes  int
	log    *slog.Logger
	tracer trace.Tracer
}

func newStageRunner(r *Runtime, s Stage) *stageRunner {
	routes := make(map[string]Route, len(s.Routes))
	for _, rt := range s.Routes {
		routes[rt.Topic] = rt
	}
	lanes := s.Concurrency
	if lanes <= 0 {
		lanes = runtime.GOMAXPROCS(0)
	}
	return &stageRunner{rt: r, st: s, routes: routes, lanes: lanes, log: r.log.With("stage", s.Name),
		tracer: r.cfg.TracerProvider.Tracer(instrumentation)}
}

// session runs one Kafka client for the stage until ctx is done (nil) or
// the client fails (the error).
func (s *stageRunner) session(ctx context.Context) error {
	if s.st.isSink() {
		return s.sinkSession(ctx)
	}
	return s.transactSession(ctx)
}

// transactSession consumes, handles and produces with one transaction per
// batch: outputs, dead letters and the input offsets commit together or
// not at all.
func (s *stageRunner) transactSession(ctx context.Context) error {
	cfg := s.rt.cfg
	opts := append(s.rt.clientOpts(s.st),
		kgo.TransactionalID("prismflow-"+s.st.Name+"-"+cfg.InstanceID+"-"+s.rt.txnToken),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.DefaultProduceTopic(s.st.Output),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("stage %s: new client: %w", s.st.Name, err)
	}
	defer sess.Close()
	for {
		recs, ok := s.poll(ctx, sess.PollRecords)
		if !ok {
			return nil
		}
		if len(recs) == 0 {
			continue
		}
		if err := s.transactBatch(ctx, sess, recs); err != nil {
			return err
		}
	}
}

// poll returns the next batch, or false once ctx is done.
func (s *stageRunner) poll(ctx context.Context, poll func(context.Context, int) kgo.Fetches) ([]*kgo.Record, bool) {
	batch := s.rt.cfg.BatchSize
	if s.st.BatchSize > 0 {
		batch = s.st.BatchSize
	}
	fetches := poll(ctx, batch)
	if ctx.Err() != nil || fetches.IsClientClosed() {
		return nil, false
	}
	fetches.EachError(func(topic string, p int32, err error) {
		s.log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
	})
	recs := fetches.Records()
	for _, r := range recs {
		s.rt.m.consumed.WithLabelValues(s.st.Name, r.Topic).Inc()
	}
	return recs, true
}

func (s *stageRunner) transactBatch(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record) error {
	work, cancel := s.workContext(ctx)
	defer cancel()
	results := s.handleBatch(ctx, work, recs)
	var out []*kgo.Record
	for _, res := range results {
		if res.stop != nil {
			// Nothing was produced for this batch: the session closes
			// without committing, and the next owner of the partitions
			// starts again from the last committed offsets.
			return res.stop
		}
		out = append(out, res.records...)
	}
	// The transaction only opens once the whole batch is handled, so a
	// slow handler or a long retry never holds a transaction open (and
	// never runs into the transaction timeout).
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("stage %s: begin transaction: %w", s.st.Name, err)
	}
	promise := kgo.AbortingFirstErrPromise(sess.Client())
	for _, r := range out {
		sess.Produce(work, r, promise.Promise())
	}
	produceErr := promise.Err()
	committed, err := sess.End(work, produceErr == nil)
	if err != nil {
		return fmt.Errorf("stage %s: end transaction: %w", s.st.Name, err)
	}
	if produceErr != nil {
		return fmt.Errorf("stage %s: produce: %w", s.st.Name, produceErr)
	}
	if !committed {
		// A rebalance moved partitions while we worked; the session
		// rewound to the committed offsets and we handle them again.
		s.log.Info("transaction aborted by a rebalance; batch will be handled again", "records", len(recs))
		return nil
	}
	s.committed(results, out)
	return nil
}

// sinkSession consumes, hands records to idempotent sink handlers and
// commits offsets once a batch is done. Rebalances wait for the batch in
// hand, so a partition is never handled by two members at once.
func (s *stageRunner) sinkSession(ctx context.Context) error {
	opts := append(s.rt.clientOpts(s.st),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.DefaultProduceTopic(s.rt.cfg.DeadLetterTopic),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("stage %s: new client: %w", s.st.Name, err)
	}
	defer cl.CloseAllowingRebalance()
	for {
		recs, ok := s.poll(ctx, cl.PollRecords)
		if !ok {
			return nil
		}
		if len(recs) > 0 {
			if err := s.sinkBatch(ctx, cl, recs); err != nil {
				return err
			}
		}
		cl.AllowRebalance()
	}
}

func (s *stageRunner) sinkBatch(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	work, cancel := s.workContext(ctx)
	defer cancel()
	results := s.handleBatch(ctx, work, recs)
	var dead []*kgo.Record
	for _, res := range results {
		if res.stop != nil {
			return res.stop // no commit: handlers are idempotent, the batch is redone
		}
		dead = append(dead, res.records...)
	}
	// Dead letters must be durable before the offsets that skip them.
	if err := cl.ProduceSync(work, dead...).FirstErr(); err != nil {
		return fmt.Errorf("stage %s: produce dead letters: %w", s.st.Name, err)
	}
	if err := cl.CommitUncommittedOffsets(work); err != nil {
		return fmt.Errorf("stage %s: commit: %w", s.st.Name, err)
	}
	s.committed(results, dead)
	return nil
}

// committed counts what a committed batch produced.
func (s *stageRunner) committed(results []outcome, produced []*kgo.Record) {
	for _, r := range produced {
		s.rt.m.produced.WithLabelValues(s.st.Name, r.Topic).Inc()
	}
	for _, res := range results {
		if res.dead {
			s.rt.m.deadLetter.WithLabelValues(s.st.Name).Inc()
		}
	}
}

// workContext is the context handlers and commits run under: it outlives
// ctx by up to ShutdownTimeout, so that a shutdown finishes the batch in
// hand instead of cutting handlers off mid-write.
func (s *stageRunner) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(s.rt.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-work.Done():
		}
	})
	return work, func() { stop(); cancel() }
}

// outcome is what handling one record came to.
type outcome struct {
	records []*kgo.Record // the output and/or the dead letter
	dead    bool
	// stop, if set, means the record was not finished (shutdown, or the
	// dead letter itself could not be built): the batch must not commit.
	stop error
}

// handleBatch handles recs in up to s.lanes goroutines. Records with the
// same key share a lane and are handled in poll order, which keeps the
// per-key (per-document) order; keyless records share their partition's
// lane.
func (s *stageRunner) handleBatch(ctx, work context.Context, recs []*kgo.Record) []outcome {
	results := make([]outcome, len(recs))
	lanes := make([][]int, min(s.lanes, len(recs)))
	for i, r := range recs {
		l := laneOf(r, len(lanes))
		lanes[l] = append(lanes[l], i)
	}
	var wg sync.WaitGroup
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Go(func() {
			for _, i := range lane {
				rctx, span := s.startSpan(work, recs[i])
				results[i] = s.handle(ctx, rctx, recs[i])
				endSpan(span, results[i])
				if results[i].stop != nil {
					return // the batch will not commit; spare the rest
				}
			}
		})
	}
	wg.Wait()
	return results
}

func laneOf(r *kgo.Record, n int) int {
	h := fnv.New32a()
	if len(r.Key) > 0 {
		h.Write(r.Key)
	} else {
		h.Write([]byte(r.Topic + "/" + strconv.Itoa(int(r.Partition))))
	}
	return int(h.Sum32() % uint32(n))
}

// handle runs one record through its route with retries, and turns what
// cannot be handled into a dead letter.
func (s *stageRunner) handle(ctx, work context.Context, rec *kgo.Record) outcome {
	m := s.rt.m
	m.inFlight.WithLabelValues(s.st.Name).Inc()
	defer m.inFlight.WithLabelValues(s.st.Name).Dec()
	log := s.log.With("topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "document_id", string(rec.Key))

	route, ok := s.routes[rec.Topic]
	if !ok { // cannot happen: we only subscribe to route topics
		return outcome{stop: fmt.Errorf("stage %s: no route for topic %s", s.st.Name, rec.Topic)}
	}
	policy := s.rt.cfg.Retry
	// tries counts the attempts that count against policy.Attempts; the
	// waits of an outage do not.
	tries, outage := 0, 0
	for {
		out, in, err := s.attempt(work, route, rec)
		if err == nil {
			return outcome{records: out}
		}
		if ctx.Err() != nil && work.Err() != nil {
			// Cut off by shutdown: not the record's fault.
			return outcome{stop: ctx.Err()}
		}
		kind := s.classify(err)
		m.failed.WithLabelValues(s.st.Name, kind).Inc()
		if kind == kindUnavailable {
			// Not the record's fault: wait for the dependency however
			// long it takes, holding the batch and its offsets.
			outage++
			wait := policy.backoff(outage)
			if outage == 1 || outage%10 == 0 {
				log.Warn("dependency unavailable; retrying until it is back", "err", err, "waits", outage, "backoff", wait)
			}
			m.retries.WithLabelValues(s.st.Name).Inc()
			if !sleep(ctx, wait) {
				return outcome{stop: ctx.Err()}
			}
			continue
		}
		tries++
		if (kind != kindTransient || tries >= policy.Attempts) && rec.Topic == s.rt.cfg.DeadLetterTopic {
			// Dead-lettering a dead letter would feed the consumer its
			// own failures forever; the record stays in the topic at
			// its offset for an operator to look at.
			log.Error("dead letter could not be handled; skipped", "err", err, "kind", kind, "attempts", tries)
			return outcome{}
		}
		if kind != kindTransient || tries >= policy.Attempts {
			dl, derr := s.deadLetter(work, rec, in, err, kind != kindTransient, tries)
			if derr != nil {
				return outcome{stop: derr}
			}
			log.Warn("record dead-lettered", "err", err, "kind", kind, "attempts", tries)
			return outcome{records: []*kgo.Record{dl}, dead: true}
		}
		wait := policy.backoff(tries)
		log.Info("transient failure; retrying", "err", err, "attempt", tries, "backoff", wait)
		m.retries.WithLabelValues(s.st.Name).Inc()
		if !sleep(ctx, wait) {
			return outcome{stop: ctx.Err()}
		}
	}
}

func (s *stageRunner) classify(err error) string {
	var p panicError
	switch {
	case errors.As(err, &p):
		return kindPanic
	case s.rt.cfg.BadRecord != nil && errors.Is(err, s.rt.cfg.BadRecord):
		return kindBadRecord
	case IsPermanent(err):
		return kindPermanent
	case IsUnavailable(err):
		return kindUnavailable
	default:
		return kindTransient
	}
}

// panicError is a recovered handler panic: the record caused it, so it is
// dead-lettered at once and the process lives on.
type panicError struct {
	value any
	stack []byte
}

func (p panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// attempt decodes rec, restores claim-checked texts, runs the handler and
// builds the output record. in is the decoded input if decoding worked.
func (s *stageRunner) attempt(ctx context.Context, route Route, rec *kgo.Record) (out []*kgo.Record, in events.Event, err error) {
	start := s.rt.now()
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			s.log.Error("handler panicked", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
				"panic", fmt.Sprint(v), "stack", string(stack))
			out, err = nil, panicError{value: v, stack: stack}
		}
		s.rt.m.handle.WithLabelValues(s.st.Name).Observe(s.rt.now().Sub(start).Seconds())
	}()
	ev := route.newIn()
	if err := s.rt.codec.Decode(ctx, rec.Value, ev); err != nil {
		return nil, nil, fmt.Errorf("decode %s@%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	in = ev // from here on a dead letter can name the document, even after a panic
	if tc, ok := ev.(events.TextCarrier); ok && s.rt.blobs != nil {
		if err := checkIn(ctx, s.rt.blobs, tc); err != nil {
			return nil, ev, err
		}
	}
	res, err := route.call(ctx, ev)
	if err != nil {
		return nil, ev, fmt.Errorf("stage %s: %w", s.st.Name, err)
	}
	// A sink returns nothing, and so may a fan-out: the input offset
	// still commits, with no output.
	for _, o := range res {
		r, err := s.output(ctx, rec, ev, o, route.ownKeys)
		if err != nil {
			return nil, ev, err
		}
		out = append(out, r)
	}
	return out, ev, nil
}

// output stamps ev's Meta and encodes it into a record for the output
// topic, claim-checking its texts if it is too large. ownKey keys the
// record by ev's own document id rather than the input's key.
func (s *stageRunner) output(ctx context.Context, src *kgo.Record, in events.Event, ev metaSetter, ownKey bool) (*kgo.Record, error) {
	// The output continues the trace from this record's span; with no
	// tracing and no parent there is no span, and the record's own trace
	// (or a new one) goes on.
	tp := spanTraceparent(ctx)
	if tp == "" {
		tp = traceparentOf(src, in)
	}
	ev.SetMeta(events.Meta{
		Stage:        s.st.Name,
		StageVersion: s.st.Version,
		ProducedAt:   s.rt.now().UTC(),
		TraceParent:  tp,
		Run:          runOf(in),
	})
	var key []byte
	if ownKey {
		if key = []byte(docOf(ev).ID); len(key) == 0 {
			return nil, Permanent(fmt.Errorf("stage %s: fan-out output %T without a document id", s.st.Name, ev))
		}
	} else {
		key = src.Key
		if len(key) == 0 {
			key = []byte(docOf(in).ID)
		}
		if len(key) == 0 {
			key = []byte(docOf(ev).ID)
		}
	}
	topic := s.st.Output
	value, err := s.rt.codec.Encode(ctx, topic, ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", topic, err)
	}
	if tc, ok := ev.(events.TextCarrier); ok && len(value) > s.rt.cfg.ClaimCheckBytes {
		if s.rt.blobs == nil {
			return nil, Permanent(fmt.Errorf("event of %d bytes over the claim-check limit and no blob store", len(value)))
		}
		doc := docOf(ev).ID
		if doc == "" {
			doc = string(key)
		}
		if err := checkOut(ctx, s.rt.blobs, doc, tc); err != nil {
			return nil, err
		}
		if value, err = s.rt.codec.Encode(ctx, topic, ev); err != nil {
			return nil, fmt.Errorf("encode %s after claim check: %w", topic, err)
		}
	}
	return &kgo.Record{
		Topic: topic,
		Key:   key,
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: traceparentHeader, Value: []byte(tp)},
			{Key: HeaderStage, Value: []byte(s.st.Name)},
		},
	}, nil
}

// deadLetter builds the dead-letter record for rec, which failed with err
// after attempts tries. in is the decoded input, nil if decoding failed.
func (s *stageRunner) deadLetter(ctx context.Context, rec *kgo.Record, in events.Event, cause error, permanent bool, attempts int) (*kgo.Record, error) {
	headers := make(map[string]string, len(rec.Headers))
	prior := 0
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
		if h.Key == HeaderAttempts {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				prior = n
			}
		}
	}
	doc := docOf(in)
	dl := &events.DeadLetter{
		DocumentID: doc.ID,
		Tenant:     doc.Tenant,
		Topic:      rec.Topic,
		Partition:  rec.Partition,
		Offset:     rec.Offset,
		Key:        slices.Clone(rec.Key),
		Value:      slices.Clone(rec.Value),
		Headers:    headers,
		Error:      cause.Error(),
		Permanent:  permanent,
		Attempts:   int32(prior + attempts),
	}
	if dl.DocumentID == "" {
		dl.DocumentID = string(rec.Key)
	}
	tp := traceparentOf(rec, in)
	dl.SetMeta(events.Meta{
		Stage:        s.st.Name,
		StageVersion: s.st.Version,
		ProducedAt:   s.rt.now().UTC(),
		TraceParent:  tp,
		Run:          runOf(in),
	})
	topic := s.rt.cfg.DeadLetterTopic
	value, err := s.rt.codec.Encode(ctx, topic, dl)
	if err != nil {
		return nil, fmt.Errorf("stage %s: encode dead letter for %s@%d/%d: %w", s.st.Name, rec.Topic, rec.Partition, rec.Offset, err)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(dl.DocumentID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: traceparentHeader, Value: []byte(tp)},
			{Key: HeaderStage, Value: []byte(s.st.Name)},
			{Key: HeaderAttempts, Value: []byte(strconv.Itoa(int(dl.Attempts)))},
		},
	}, nil
}

// traceparentOf is the trace an output of rec continues: the record's
// header, else the input event's Meta, else a new trace.
func traceparentOf(rec *kgo.Record, in events.Event) string {
	for _, h := range rec.Headers {
		if h.Key == traceparentHeader && validTraceparent(string(h.Value)) {
			return string(h.Value)
		}
	}
	if md, ok := in.(interface{ Metadata() events.Meta }); ok && validTraceparent(md.Metadata().TraceParent) {
		return md.Metadata().TraceParent
	}
	return newTraceparent()
}

// runOf is the input's run, at least 1.
func runOf(in events.Event) int32 {
	if md, ok := in.(interface{ Metadata() events.Meta }); ok {
		return max(md.Metadata().Run, 1)
	}
	return 1
}

func docOf(ev events.Event) events.Document {
	if d, ok := ev.(events.Documented); ok {
		return d.Doc()
	}
	return events.Document{}
}
