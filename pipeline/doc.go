// Package pipeline is the Kafka runtime every prismflow stage runs in.
//
// A stage package is domain code only: a typed handler such as
//
//	func (s *Splitter) Handle(ctx context.Context, in events.TextExtracted) (events.SectionsSplit, error)
//
// is adapted once, generically, by Transform (one event in, one event out),
// TransformMany (one event in, zero or more events about other documents
// out) or Sink (one event in, written outside Kafka). The Runtime does all the
// rest around it: consuming, decoding, claim checks, bounded concurrency,
// retries, dead letters, producing, committing, tracing, metrics and logs.
// Stage tests therefore need no broker, and this package's tests run
// against kfake with real franz-go clients.
//
// # Guarantees
//
// Exactly once, Kafka to Kafka. A transform stage consumes read_committed
// with a franz-go GroupTransactSession: each polled batch is handled, and
// its outputs, its dead letters and its input offsets are committed in one
// Kafka transaction. A crash, a rebalance or a failed produce aborts the
// transaction and the batch is handled again from the committed offsets,
// so a read_committed consumer sees every output exactly once. Handlers may
// still run more than once for a record, so any side effect outside Kafka
// (a blob write) must be idempotent; the runtime's own claim-check blobs
// are content addressed for that reason. The transaction opens only after
// the batch is handled, so slow handlers never run into the transaction
// timeout. Transactional ids are unique per process (stage + instance id)
// so any number of processes may run a stage; after a crash the dead
// process's open transaction blocks its partitions for at most
// Config.TransactionTimeout (KIP-447 stable offsets), then aborts, and the
// group rebalances once the dead member's session timeout has passed.
//
// At least once into sinks. A sink stage (persist) commits a batch's
// offsets after every handler in it returned, so its handlers must be
// idempotent (upserts keyed by document id and run). Rebalances wait for
// the batch in hand (BlockRebalanceOnPoll), so two members never handle
// the same partition at once.
//
// Order per key. Records are keyed by document id; output keys equal input
// keys (or the document id if the input had none), except for
// TransformMany, whose outputs are other documents (an e-mail's
// attachments) and are keyed each by its own document id; all of them
// still commit in the input's transaction. Within a batch, records
// with the same key run in order in the same lane, while up to
// Stage.Concurrency lanes run in parallel; batches run one after another.
// So the events of one document stay in order end to end.
//
// # Errors and dead letters
//
// A handler error marked with Permanent, a decode error wrapping the
// codec's bad-record sentinel (Config.BadRecord), a missing or damaged
// claim-check blob, or a handler panic (recovered and logged with its
// stack) sends the record to the dead-letter topic at once. Any other error
// is transient: it is retried with exponential backoff and full jitter
// (Config.Retry) and dead-lettered when the attempts run out. The dead
// letter (events.DeadLetter) keeps the original key, value and headers,
// the source topic, partition and offset, the error, whether it was
// permanent and how many attempts were made (adding a prismflow-attempts
// header of a redriven record), and for transform stages it is written in
// the same transaction as the batch's outputs. A shutdown never
// dead-letters: records still retrying are left for the next run. A
// record read from the dead-letter topic itself (persist stores dead
// letters) is never dead-lettered again, which would loop; it is logged
// and skipped, and stays in the topic.
//
// # Shutdown
//
// When Run's context is cancelled each stage stops fetching, lets the
// batch in hand finish (at most Config.ShutdownTimeout), commits it, and
// leaves its group; transactions are committed or aborted, never left
// open. Run then returns nil.
//
// # Claim check
//
// Events that implement events.TextCarrier and encode to more than
// Config.ClaimCheckBytes have every text moved to the blob store under
// claims/<document id>/<sha256 of the text>, and only references travel in
// Kafka; texts are loaded back (and verified against their hash) before a
// handler sees the event. Files never travel in Kafka.
//
// # Observability
//
// Output records carry the W3C traceparent of their input (a new trace is
// started for input without one) and the producing stage in the
// prismflow-stage header; the event's Meta repeats both, plus the run and
// when it was produced. Each handled record gets an OpenTelemetry span,
// a child of the record's traceparent, from Config.TracerProvider; the
// outputs then carry that span as their parent, so a document's stages
// form one trace from upload to persist. With no provider the spans are
// no-ops and outputs carry the input's traceparent unchanged. Tracing
// builds the OTLP/HTTP provider and KafkaTracing adds franz-go's kotel
// client spans.
//
// # Security
//
// KafkaOpts turns the kafka.sasl.* and kafka.tls.* settings into the
// client options every Kafka client of the binary takes (Config.ClientOpts
// here), so one setting secures every connection. Metrics are prometheus series named
// prismflow_stage_* labelled by stage, plus franz-go client metrics
// (kprom, namespace prismflow, labelled by stage).
package pipeline
