package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"prismflow/connectors/blob"
	"prismflow/schemas/events"
)

// Codec turns events into Kafka record values and back. *schemas.Codec
// (Avro in the Confluent wire format) implements it.
type Codec interface {
	// Encode serialises ev for topic.
	Encode(ctx context.Context, topic string, ev events.Event) ([]byte, error)
	// Decode fills into, a pointer to an event, from b.
	Decode(ctx context.Context, b []byte, into events.Event) error
}

// Header names the runtime reads and writes besides traceparent.
const (
	// HeaderStage names the stage that produced a record.
	HeaderStage = "prismflow-stage"
	// HeaderAttempts counts how often a record was tried before, across
	// redrives from the dead-letter topic.
	HeaderAttempts = "prismflow-attempts"
)

// Config tunes the runtime. Zero fields take the defaults.
type Config struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// ClientOpts are added to every Kafka client (SASL, TLS, ...).
	ClientOpts []kgo.Opt
	// TracerProvider receives a span per handled record, a child of the
	// trace in the record's traceparent header; outputs continue from
	// it. Nil: a no-op provider (see Tracing).
	TracerProvider trace.TracerProvider
	// DeadLetterTopic receives events.DeadLetter for records that could
	// not be handled. Required.
	DeadLetterTopic string
	// BadRecord is the codec's sentinel for bytes that can never decode
	// (schemas.ErrBadRecord); a decode error wrapping it is permanent.
	// Nil: decode errors are retried like any other.
	BadRecord error
	// Retry is the policy for transient errors.
	Retry Retry
	// ClaimCheckBytes is the encoded size above which an event's texts
	// move to the blob store. Default 256 KiB.
	ClaimCheckBytes int
	// BatchSize is the most records polled, handled and committed at
	// once (one transaction). Default 100.
	BatchSize int
	// TransactionTimeout is the broker-side limit on an open transaction:
	// after a crash, the partitions the dead process had are blocked at
	// most this long. A transaction opens only once its batch is handled,
	// so it lasts as long as a produce and a commit. Default 10s, as in
	// Kafka Streams' exactly-once mode.
	TransactionTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight records may still run
	// after Run's context is cancelled. Default 30s.
	ShutdownTimeout time.Duration
	// InstanceID makes transactional ids unique per process. Default
	// <hostname>-<pid>-<random>.
	InstanceID string
	// StableInstance says InstanceID is the same across restarts of this
	// process (the embedded mode, or a StatefulSet pod name). The runtime
	// then also uses it for static group membership, so a restarted
	// process takes its partitions back at once instead of waiting for
	// the dead member's session to time out. Two live processes must
	// never share it.
	StableInstance bool
}

func (c Config) withDefaults() Config {
	c.Retry = c.Retry.withDefaults()
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.ClaimCheckBytes <= 0 {
		c.ClaimCheckBytes = 256 << 10
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.InstanceID == "" {
		host, _ := os.Hostname()
		var r [3]byte
		_, _ = rand.Read(r[:])
		c.InstanceID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
	return c
}

// Runtime runs stages against Kafka. It is safe to call Run more than
// once (sequentially or concurrently) with different stages.
type Runtime struct {
	cfg   Config
	codec Codec
	blobs blob.Store
	log   *slog.Logger
	reg   prometheus.Registerer
	m     *metrics
	now   func() time.Time
	// txnToken makes this start's transactional ids unique. Fencing of
	// a zombie instance comes from the consumer group generation
	// (KIP-447, which GroupTransactSession uses), not from reusing a
	// transactional id; and reusing one across a crash of the embedded
	// broker would meet kfake's crash recovery, which aborts the dead
	// transaction without writing an abort marker, so that readers
	// would drop every later batch of that producer id as aborted.
	txnToken string
}

// New returns a runtime. A nil logger discards logs; a nil registerer
// keeps metrics in a private registry.
func New(cfg Config, codec Codec, blobs blob.Store, log *slog.Logger, reg prometheus.Registerer) *Runtime {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &Runtime{
		cfg:      cfg.withDefaults(),
		codec:    codec,
		blobs:    blobs,
		log:      log,
		reg:      reg,
		m:        newMetrics(reg),
		now:      time.Now,
		txnToken: randomToken(),
	}
}

func randomToken() string {
	var r [4]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(r[:])
}

// Run runs every stage as its own consumer group until ctx is done. Then
// each stage stops fetching, finishes the batch in hand (bounded by
// ShutdownTimeout), commits it, leaves its group, and Run returns nil.
// A stage whose client fails is restarted with backoff; Run returns an
// error only for a configuration that can never run.
func (r *Runtime) Run(ctx context.Context, stages ...Stage) error {
	if len(r.cfg.Brokers) == 0 {
		return errors.New("pipeline: no brokers configured")
	}
	if r.cfg.DeadLetterTopic == "" {
		return errors.New("pipeline: no dead-letter topic configured")
	}
	if r.codec == nil {
		return errors.New("pipeline: no codec")
	}
	names := make(map[string]bool, len(stages))
	for _, s := range stages {
		if err := s.validate(); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		if names[s.Name] {
			return fmt.Errorf("pipeline: stage %s given twice", s.Name)
		}
		names[s.Name] = true
	}
	var g errgroup.Group
	for _, s := range stages {
		g.Go(func() error {
			r.supervise(ctx, newStageRunner(r, s))
			return nil
		})
	}
	return g.Wait()
}

// supervise runs a stage session, and a new one after a failure, until
// ctx is done. A session failure (a fenced producer, a broker gone for
// longer than the client's retries) leaves nothing half-done: its open
// transaction was aborted or times out, and a new session resumes from
// the committed offsets.
func (r *Runtime) supervise(ctx context.Context, s *stageRunner) {
	for failures := 1; ; failures++ {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := r.cfg.Retry.backoff(failures)
		s.log.Error("stage session failed; restarting", "err", err, "backoff", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// clientOpts are the options every client of stage s shares.
func (r *Runtime) clientOpts(s Stage) []kgo.Opt {
	topics := make([]string, len(s.Routes))
	for i, rt := range s.Routes {
		topics[i] = rt.Topic
	}
	kp := kprom.NewMetrics("prismflow",
		kprom.Registerer(r.reg),
		kprom.WithStaticLabel(prometheus.Labels{"stage": s.Name}),
	)
	opts := []kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ClientID("prismflow-" + s.Name),
		kgo.ConsumerGroup(s.Group()),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A new group starts at the beginning: a document produced before
		// its stage first ran must still be processed.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithLogger(kgoLogger{r.log.With("stage", s.Name, "component", "kgo")}),
		kgo.WithHooks(kp),
	}
	if r.cfg.StableInstance {
		opts = append(opts, kgo.InstanceID("prismflow-"+s.Name+"-"+r.cfg.InstanceID))
	}
	return append(opts, r.cfg.ClientOpts...)
}

// kgoLogger hands franz-go's logs to slog. franz-go's info level narrates
// every rebalance and transaction, so it becomes slog's debug.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	switch {
	case k.l.Enabled(context.Background(), slog.LevelDebug):
		return kgo.LogLevelInfo
	case k.l.Enabled(context.Background(), slog.LevelWarn):
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	k.l.Log(context.Background(), lvl, msg, keyvals...)
}
