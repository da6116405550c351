package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/schemas/events"
)

// The operator's tools: reading and redriving dead letters, and replaying
// a stage. They are Kafka work, so they live with the runtime; the CLI
// only parses flags and prints.

// Header names the tools add to the records they send.
const (
	// HeaderReplay marks a record republished by a replay (its value is
	// the time of the replay).
	HeaderReplay = "prismflow-replay"
	// HeaderRedrive marks a record redriven from the dead-letter topic
	// (its value is the dead letter's id).
	HeaderRedrive = "prismflow-redrive"
)

// Rewriter reads and changes a record's Avro value generically, whatever
// its event type (schemas.Codec).
type Rewriter interface {
	Native(ctx context.Context, b []byte) (map[string]any, int, error)
	Rewrite(ctx context.Context, b []byte, edit func(map[string]any) error) ([]byte, error)
}

// readAll reads topics from start to their current end, read_committed,
// and calls fn for each record. Transaction markers occupy offsets no
// record has, so a partition also counts as read once a poll brings
// nothing more for a second.
func readAll(ctx context.Context, cl *kgo.Client, topics []string, fn func(*kgo.Record) error) error {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("end offsets of %v: %w", topics, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("end offsets of %v: %w", topics, err)
	}
	parts := map[string]map[int32]kgo.Offset{}
	left := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return
		}
		if parts[o.Topic] == nil {
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		left++
	})
	if left == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(cl.Opts(),
		kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer rd.Close()
	for idle := 0; idle < 2; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := rd.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = errors.Join(ferr, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
			}
		})
		if ferr != nil {
			return ferr
		}
		recs := fs.Records()
		if len(recs) == 0 {
			idle++
			continue
		}
		idle = 0
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeadLetterRecord is a dead letter as it sits in the dead-letter topic.
type DeadLetterRecord struct {
	// ID names it for show and redrive: "<partition>:<offset>" in the
	// dead-letter topic.
	ID string
	At time.Time
	events.DeadLetter
}

// ReadDeadLetters reads the whole dead-letter topic. Records that do not
// decode are returned with only the error filled, so nothing is hidden.
func ReadDeadLetters(ctx context.Context, cl *kgo.Client, codec Codec, topic string) ([]DeadLetterRecord, error) {
	var out []DeadLetterRecord
	err := readAll(ctx, cl, []string{topic}, func(r *kgo.Record) error {
		d := DeadLetterRecord{ID: fmt.Sprintf("%d:%d", r.Partition, r.Offset), At: r.Timestamp}
		if err := codec.Decode(ctx, r.Value, &d.DeadLetter); err != nil {
			d.Error = "undecodable dead letter: " + err.Error()
			d.DocumentID = string(r.Key)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// Redrive sends a dead letter's original record back to its topic, with
// its original key and headers, the attempts so far, and a mark naming
// the dead letter. If it fails again the runtime dead-letters it anew
// with a higher attempt count.
func Redrive(ctx context.Context, cl *kgo.Client, d DeadLetterRecord) error {
	if d.Topic == "" || d.Value == nil {
		return fmt.Errorf("redrive %s: the dead letter holds no original record", d.ID)
	}
	rec := &kgo.Record{Topic: d.Topic, Key: d.Key, Value: d.Value}
	for k, v := range d.Headers {
		if k == HeaderAttempts || k == HeaderRedrive {
			continue
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	rec.Headers = append(rec.Headers,
		kgo.RecordHeader{Key: HeaderAttempts, Value: []byte(strconv.Itoa(int(d.Attempts)))},
		kgo.RecordHeader{Key: HeaderRedrive, Value: []byte(d.ID)},
	)
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("redrive %s to %s: %w", d.ID, d.Topic, err)
	}
	return nil
}

// ReplayQuery chooses the input records a replay sends through a stage
// again: those of the given documents, or those written within [From,
// To). A zero To means up to now.
type ReplayQuery struct {
	Topics    []string
	Documents []string
	From, To  time.Time
}

func (q ReplayQuery) matches(r *kgo.Record) bool {
	if len(q.Documents) > 0 {
		return slices.Contains(q.Documents, string(r.Key))
	}
	return !r.Timestamp.Before(q.From) && (q.To.IsZero() || r.Timestamp.Before(q.To))
}

// Replayed describes one record a replay sent (or, dry, would send).
type Replayed struct {
	Topic     string
	Partition int32
	Offset    int64
	Document  string
	Run       int32 // the new run
}

// Republish sends the chosen input records of a stage again, each as a
// new run of its document (Meta.Run one above any run of that document on
// the topics), with a replay header. The stage and everything after it
// process them like new records; the results of the earlier runs stay
// stored, and the newest run is the one shown. With dryRun nothing is
// sent.
func Republish(ctx context.Context, cl *kgo.Client, codec Rewriter, q ReplayQuery, dryRun bool) ([]Replayed, error) {
	// Per document and topic the newest matching record: a document
	// replayed before has several runs on the topic, and only its latest
	// input is sent again.
	type key struct{ doc, topic string }
	maxRun := map[string]int32{}
	latest := map[key]*kgo.Record{}
	latestRun := map[key]int32{}
	err := readAll(ctx, cl, q.Topics, func(r *kgo.Record) error {
		run, err := recordRun(ctx, codec, r.Value)
		if err != nil {
			return nil // an undecodable record cannot be replayed; the dead-letter tools handle it
		}
		doc := string(r.Key)
		maxRun[doc] = max(maxRun[doc], run)
		if k := (key{doc, r.Topic}); q.matches(r) && run >= latestRun[k] {
			latest[k], latestRun[k] = r, run
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay: read %v: %w", q.Topics, err)
	}
	chosen := make([]*kgo.Record, 0, len(latest))
	for _, r := range latest {
		chosen = append(chosen, r)
	}
	// In log order, so a replay through persist keeps each document's
	// events in the order they were first written.
	slices.SortFunc(chosen, func(a, b *kgo.Record) int { return a.Timestamp.Compare(b.Timestamp) })
	// One new run per document, whatever the number of its records.
	newRun := map[string]int32{}
	stamp := time.Now().UTC().Format(time.RFC3339)
	var out []Replayed
	for _, r := range chosen {
		doc := string(r.Key)
		if newRun[doc] == 0 {
			newRun[doc] = maxRun[doc] + 1
		}
		run := newRun[doc]
		out = append(out, Replayed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Document: doc, Run: run})
		if dryRun {
			continue
		}
		value, err := codec.Rewrite(ctx, r.Value, func(rec map[string]any) error {
			meta, ok := rec["meta"].(map[string]any)
			if !ok {
				return errors.New("event has no meta")
			}
			meta["run"] = run
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("replay %s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		rec := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: value}
		for _, h := range r.Headers {
			if h.Key != HeaderReplay && h.Key != HeaderAttempts {
				rec.Headers = append(rec.Headers, h)
			}
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderReplay, Value: []byte(stamp)})
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return out, fmt.Errorf("replay %s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	return out, nil
}

func recordRun(ctx context.Context, codec Rewriter, b []byte) (int32, error) {
	rec, _, err := codec.Native(ctx, b)
	if err != nil {
		return 0, err
	}
	meta, _ := rec["meta"].(map[string]any)
	run, _ := meta["run"].(int32)
	return max(run, 1), nil
}

// ResetOffsets rewinds a stage's consumer group on its input topics to
// the first record at or after from, so the stage handles everything
// since then again (as the same runs: results are overwritten, not
// versioned). It refuses while the group has members: offsets of a
// running group would be overwritten by its next commit.
func ResetOffsets(ctx context.Context, adm *kadm.Client, group string, topics []string, from time.Time) (kadm.Offsets, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	if g, ok := described[group]; ok && len(g.Members) > 0 {
		return nil, fmt.Errorf("group %s has %d running members: stop the stage before resetting its offsets, or replay by republishing", group, len(g.Members))
	}
	listed, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topics...)
	if err != nil {
		return nil, fmt.Errorf("offsets after %s: %w", from.Format(time.RFC3339), err)
	}
	if err := listed.Error(); err != nil {
		return nil, fmt.Errorf("offsets after %s: %w", from.Format(time.RFC3339), err)
	}
	offsets := listed.Offsets()
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err != nil {
		return nil, fmt.Errorf("commit offsets of %s: %w", group, err)
	}
	if err := resp.Error(); err != nil {
		return nil, fmt.Errorf("commit offsets of %s: %w", group, err)
	}
	return offsets, nil
}
