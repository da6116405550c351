package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/schemas"
)

// DefaultTopic is the topic the registry keeps its log in, the same one
// Confluent's registry uses.
const DefaultTopic = "_schemas"

// Config configures a Registry.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Topic is the compacted topic holding the registry's log; default
	// "_schemas".
	Topic string
	// ClientOpts are extra franz-go options (TLS, SASL) for the registry's
	// own client.
	ClientOpts []kgo.Opt
}

// Registry is a schema registry whose state is a Kafka log. Create it with
// New, serve Handler, and Close it when done.
type Registry struct {
	log   *slog.Logger
	topic string
	cl    *kgo.Client
	adm   *kadm.Client

	// writeMu serializes this process's writes; writes of other processes
	// are ordered by the log itself.
	writeMu sync.Mutex

	mu      sync.Mutex
	st      state
	applied int64         // offset after the last applied record
	changed chan struct{} // closed and replaced whenever applied moves
	runErr  error         // why the consume loop stopped, if it did

	cancel context.CancelFunc
	done   chan struct{}

	// beforeProduce, when set by a test, runs between choosing a version
	// and producing it: the window in which another process can win.
	beforeProduce func()
}

// state is what the log says, rebuilt by applying every record in order.
type state struct {
	subjects map[string][]*version // versions in ascending order
	texts    map[int]string        // schema text by id
	ids      map[string]int        // id by compact schema text
	maxID    int
	global   sr.CompatibilityLevel
	compat   map[string]sr.CompatibilityLevel
}

type version struct {
	subject string
	version int
	id      int
	deleted bool
}

// The record shapes of Confluent's _schemas topic.
type recordKey struct {
	KeyType string  `json:"keytype"`
	Subject *string `json:"subject"`
	Version int     `json:"version,omitempty"`
	Magic   int     `json:"magic"`
}

type schemaValue struct {
	Subject    string `json:"subject"`
	Version    int    `json:"version"`
	ID         int    `json:"id"`
	Schema     string `json:"schema"`
	SchemaType string `json:"schemaType,omitempty"`
	Deleted    bool   `json:"deleted"`
}

type configValue struct {
	Level sr.CompatibilityLevel `json:"compatibilityLevel"`
}

// New connects to Kafka, creates the log topic if it is missing (one
// partition, compacted) and replays it before returning, so the registry
// answers with every id ever assigned. It owns its own client, because it
// consumes one partition directly rather than in a group.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Registry, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("registry: no brokers")
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if log == nil {
		log = slog.Default()
	}
	if err := createTopic(ctx, cfg); err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			cfg.Topic: {0: kgo.NewOffset().AtStart()},
		}),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry: kafka client: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		log:     log.With("component", "schema-registry"),
		topic:   cfg.Topic,
		cl:      cl,
		adm:     kadm.NewClient(cl),
		changed: make(chan struct{}),
		st: state{
			subjects: map[string][]*version{},
			texts:    map[int]string{},
			ids:      map[string]int{},
			global:   sr.CompatBackward,
			compat:   map[string]sr.CompatibilityLevel{},
		},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go r.run(runCtx)
	if err := r.sync(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("registry: replay %s: %w", cfg.Topic, err)
	}
	r.mu.Lock()
	r.log.Info("schema registry ready", "topic", cfg.Topic, "schemas", len(r.st.texts), "subjects", len(r.st.subjects))
	r.mu.Unlock()
	return r, nil
}

func createTopic(ctx context.Context, cfg Config) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("registry: kafka client: %w", err)
	}
	defer cl.Close()
	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("registry: create topic %s: %w", cfg.Topic, err)
	}
	return nil
}

// Close stops consuming and closes the Kafka client.
func (r *Registry) Close() {
	r.cancel()
	<-r.done
	r.cl.Close()
}

// run applies the log as it grows, for the life of the registry.
func (r *Registry) run(ctx context.Context) {
	defer close(r.done)
	for {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			r.mu.Lock()
			r.runErr = errors.New("registry closed")
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			r.log.Warn("fetch schemas log", "topic", t, "partition", p, "err", err)
		})
		r.mu.Lock()
		moved := false
		fs.EachRecord(func(rec *kgo.Record) {
			r.apply(rec)
			r.applied = rec.Offset + 1
			moved = true
		})
		if moved {
			close(r.changed)
			r.changed = make(chan struct{})
		}
		r.mu.Unlock()
	}
}

// apply folds one log record into the state; r.mu is held. Records that
// lost a race (a version or id another process took first) are skipped,
// so every process replaying the log derives the same state.
func (r *Registry) apply(rec *kgo.Record) {
	var k recordKey
	if err := json.Unmarshal(rec.Key, &k); err != nil {
		r.log.Warn("skip schemas log record with bad key", "offset", rec.Offset, "err", err)
		return
	}
	st := &r.st
	switch k.KeyType {
	case "SCHEMA":
		if k.Subject == nil {
			return
		}
		if rec.Value == nil { // hard delete
			st.subjects[*k.Subject] = slices.DeleteFunc(st.subjects[*k.Subject], func(v *version) bool { return v.version == k.Version })
			return
		}
		var v schemaValue
		if err := json.Unmarshal(rec.Value, &v); err != nil || v.ID <= 0 || v.Version <= 0 {
			r.log.Warn("skip bad schemas log record", "offset", rec.Offset, "err", err)
			return
		}
		compact, err := schemas.CompactJSON(v.Schema)
		if err != nil {
			return
		}
		vs := st.subjects[v.Subject]
		for _, old := range vs {
			if old.version == v.Version {
				// Only the record that won this version may change it
				// (soft delete); a loser of a race carries another schema.
				if old.id == v.ID && st.ids[compact] == v.ID {
					old.deleted = v.Deleted
				}
				return
			}
		}
		if v.Version != nextVersion(vs) {
			r.log.Debug("schemas log record lost a race", "offset", rec.Offset, "subject", v.Subject, "version", v.Version, "id", v.ID)
			return
		}
		if id, ok := st.ids[compact]; ok && id != v.ID {
			r.log.Debug("schemas log record lost a race", "offset", rec.Offset, "subject", v.Subject, "version", v.Version, "id", v.ID)
			return
		}
		if text, ok := st.texts[v.ID]; ok {
			if c, _ := schemas.CompactJSON(text); c != compact {
				r.log.Debug("schemas log record lost a race", "offset", rec.Offset, "subject", v.Subject, "version", v.Version, "id", v.ID)
				return
			}
		} else {
			st.texts[v.ID] = v.Schema
			st.ids[compact] = v.ID
		}
		st.maxID = max(st.maxID, v.ID)
		st.subjects[v.Subject] = append(vs, &version{subject: v.Subject, version: v.Version, id: v.ID, deleted: v.Deleted})
	case "CONFIG":
		var lvl sr.CompatibilityLevel
		if rec.Value != nil {
			var c configValue
			if err := json.Unmarshal(rec.Value, &c); err != nil {
				r.log.Warn("skip bad config record", "offset", rec.Offset, "err", err)
				return
			}
			lvl = c.Level
		}
		switch {
		case k.Subject == nil && lvl != 0:
			st.global = lvl
		case k.Subject == nil:
			st.global = sr.CompatBackward
		case lvl == 0:
			delete(st.compat, *k.Subject)
		default:
			st.compat[*k.Subject] = lvl
		}
	}
}

func nextVersion(vs []*version) int {
	if len(vs) == 0 {
		return 1
	}
	return vs[len(vs)-1].version + 1
}

// sync waits until every record in the log at the time of the call is
// applied: reads after it see all writes that were acknowledged before.
func (r *Registry) sync(ctx context.Context) error {
	offs, err := r.adm.ListEndOffsets(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("list end offset of %s: %w", r.topic, err)
	}
	o, ok := offs.Lookup(r.topic, 0)
	if !ok {
		return fmt.Errorf("no end offset for %s", r.topic)
	}
	if o.Err != nil {
		return fmt.Errorf("end offset of %s: %w", r.topic, o.Err)
	}
	return r.waitApplied(ctx, o.Offset)
}

// waitApplied waits until the record before offset end is applied.
func (r *Registry) waitApplied(ctx context.Context, end int64) error {
	for {
		r.mu.Lock()
		applied, ch, runErr := r.applied, r.changed, r.runErr
		r.mu.Unlock()
		if applied >= end {
			return nil
		}
		if runErr != nil {
			return runErr
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// produce writes one record and waits until the registry has applied it.
func (r *Registry) produce(ctx context.Context, key, value any) error {
	kb, err := json.Marshal(key)
	if err != nil {
		return err
	}
	var vb []byte
	if value != nil {
		if vb, err = json.Marshal(value); err != nil {
			return err
		}
	}
	rec := &kgo.Record{Topic: r.topic, Partition: 0, Key: kb, Value: vb}
	if err := r.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", r.topic, err)
	}
	return r.waitApplied(ctx, rec.Offset+1)
}

// apiError is an error in Confluent's shape.
type apiError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

func errorf(code int, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

const (
	codeSubjectNotFound     = 40401
	codeVersionNotFound     = 40402
	codeSchemaNotFound      = 40403
	codeCompatNotConfigured = 40408
	codeIncompatible        = 409
	codeInvalidSchema       = 42201
	codeInvalidVersion      = 42202
	codeInvalidCompat       = 42203
	codeStore               = 50001
)

// parsed is a schema submitted by a client.
type parsed struct {
	text    string
	compact string
	typ     *schemas.Type
}

func parseSchema(s sr.Schema) (parsed, error) {
	if s.Type != sr.TypeAvro {
		return parsed{}, errorf(codeInvalidSchema, "only AVRO schemas are supported, not %s", s.Type)
	}
	if len(s.References) > 0 {
		return parsed{}, errorf(codeInvalidSchema, "schema references are not supported")
	}
	compact, err := schemas.CompactJSON(s.Schema)
	if err != nil {
		return parsed{}, errorf(codeInvalidSchema, "invalid schema: %v", err)
	}
	typ, err := schemas.ParseType(s.Schema)
	if err != nil {
		return parsed{}, errorf(codeInvalidSchema, "invalid schema: %v", err)
	}
	return parsed{text: s.Schema, compact: compact, typ: typ}, nil
}

// level returns the compatibility level in force for subject; r.mu held.
func (r *Registry) level(subject string) sr.CompatibilityLevel {
	if l, ok := r.st.compat[subject]; ok {
		return l
	}
	return r.st.global
}

// live returns the subject's versions that are not soft-deleted; r.mu held.
func (r *Registry) live(subject string) []*version {
	var out []*version
	for _, v := range r.st.subjects[subject] {
		if !v.deleted {
			out = append(out, v)
		}
	}
	return out
}

// compatible checks a new schema against existing versions at level and
// returns the reasons it is not compatible; r.mu held.
func (r *Registry) compatible(level sr.CompatibilityLevel, p parsed, existing []*version) ([]string, error) {
	if level == sr.CompatNone || len(existing) == 0 {
		return nil, nil
	}
	switch level {
	case sr.CompatBackward, sr.CompatForward, sr.CompatFull:
		existing = existing[len(existing)-1:]
	}
	var msgs []string
	for _, v := range existing {
		old, err := schemas.ParseType(r.st.texts[v.id])
		if err != nil {
			return nil, fmt.Errorf("stored schema %d: %w", v.id, err)
		}
		if level != sr.CompatForward && level != sr.CompatForwardTransitive {
			for _, m := range schemas.CanRead(p.typ, old) {
				msgs = append(msgs, fmt.Sprintf("new schema cannot read version %d: %s", v.version, m))
			}
		}
		if level != sr.CompatBackward && level != sr.CompatBackwardTransitive {
			for _, m := range schemas.CanRead(old, p.typ) {
				msgs = append(msgs, fmt.Sprintf("version %d cannot read the new schema: %s", v.version, m))
			}
		}
	}
	return msgs, nil
}

// register adds schema s to subject and returns its id. The same schema
// already live in the subject returns its id without a new version; a
// schema known under another subject keeps its global id.
func (r *Registry) register(ctx context.Context, subject string, s sr.Schema) (int, error) {
	p, err := parseSchema(s)
	if err != nil {
		return 0, err
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	// A few rounds: another process may take the version or id we chose
	// between our catching up and our record landing.
	for range 5 {
		if err := r.sync(ctx); err != nil {
			return 0, errorf(codeStore, "read schemas log: %v", err)
		}
		r.mu.Lock()
		live := r.live(subject)
		for _, v := range live {
			if c, _ := schemas.CompactJSON(r.st.texts[v.id]); c == p.compact {
				r.mu.Unlock()
				return v.id, nil
			}
		}
		msgs, err := r.compatible(r.level(subject), p, live)
		if err != nil {
			r.mu.Unlock()
			return 0, errorf(codeStore, "%v", err)
		}
		if len(msgs) > 0 {
			r.mu.Unlock()
			return 0, errorf(codeIncompatible, "schema being registered is incompatible with an earlier schema for subject %q: %v", subject, msgs)
		}
		id, ok := r.st.ids[p.compact]
		if !ok {
			id = r.st.maxID + 1
		}
		ver := nextVersion(r.st.subjects[subject])
		r.mu.Unlock()

		if r.beforeProduce != nil {
			r.beforeProduce()
		}
		val := schemaValue{Subject: subject, Version: ver, ID: id, Schema: p.text}
		if err := r.produce(ctx, recordKey{KeyType: "SCHEMA", Subject: &subject, Version: ver, Magic: 1}, val); err != nil {
			return 0, errorf(codeStore, "%v", err)
		}
		r.mu.Lock()
		winner := r.find(subject, ver)
		ours := winner != nil && winner.id == id && r.st.ids[p.compact] == id
		var repair *schemaValue
		if winner != nil && !ours {
			repair = &schemaValue{Subject: subject, Version: ver, ID: winner.id, Schema: r.st.texts[winner.id], Deleted: winner.deleted}
		}
		r.mu.Unlock()
		if ours {
			r.log.Info("schema registered", "subject", subject, "version", ver, "id", id)
			return id, nil
		}
		if repair != nil {
			// Our losing record shares the winner's key; writing the
			// winner's value again keeps compaction from dropping it.
			if err := r.produce(ctx, recordKey{KeyType: "SCHEMA", Subject: &subject, Version: ver, Magic: 1}, repair); err != nil {
				return 0, errorf(codeStore, "%v", err)
			}
		}
	}
	return 0, errorf(codeStore, "could not register under %q: concurrent writers kept winning", subject)
}

// find returns a version of subject, deleted or not; r.mu held.
func (r *Registry) find(subject string, ver int) *version {
	for _, v := range r.st.subjects[subject] {
		if v.version == ver {
			return v
		}
	}
	return nil
}

// deleteSubject soft-deletes every live version of subject.
func (r *Registry) deleteSubject(ctx context.Context, subject string) ([]int, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if err := r.sync(ctx); err != nil {
		return nil, errorf(codeStore, "read schemas log: %v", err)
	}
	r.mu.Lock()
	live := r.live(subject)
	vals := make([]schemaValue, len(live))
	for i, v := range live {
		vals[i] = schemaValue{Subject: subject, Version: v.version, ID: v.id, Schema: r.st.texts[v.id], Deleted: true}
	}
	r.mu.Unlock()
	if len(live) == 0 {
		return nil, errorf(codeSubjectNotFound, "subject %q not found", subject)
	}
	versions := make([]int, len(vals))
	for i, v := range vals {
		if err := r.produce(ctx, recordKey{KeyType: "SCHEMA", Subject: &subject, Version: v.Version, Magic: 1}, v); err != nil {
			return nil, errorf(codeStore, "%v", err)
		}
		versions[i] = v.Version
	}
	r.log.Info("subject deleted", "subject", subject, "versions", versions)
	return versions, nil
}

// setConfig sets the global (subject nil) or a subject's compatibility
// level; level 0 removes a subject's own level.
func (r *Registry) setConfig(ctx context.Context, subject *string, level sr.CompatibilityLevel) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var val any
	if level != 0 {
		val = configValue{Level: level}
	}
	if err := r.produce(ctx, recordKey{KeyType: "CONFIG", Subject: subject}, val); err != nil {
		return errorf(codeStore, "%v", err)
	}
	return nil
}

// subjectsOf lists the live subject/version pairs using id; r.mu held.
func (r *Registry) subjectsOf(id int) []sr.SubjectVersion {
	var out []sr.SubjectVersion
	for _, vs := range r.st.subjects {
		for _, v := range vs {
			if v.id == id && !v.deleted {
				out = append(out, sr.SubjectVersion{Subject: v.subject, Version: v.version})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Version < out[j].Version
	})
	return out
}
