package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/schemas/events"
)

// ErrBadRecord marks a record that can never be decoded or encoded: bytes
// not in the Confluent wire format, an unknown schema id, data that does
// not match its writer schema, or a writer schema the reader cannot
// resolve. Retrying cannot help, so the runtime dead-letters such records.
var ErrBadRecord = errors.New("bad record")

func badRecord(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRecord, fmt.Sprintf(format, args...))
}

// Codec encodes events to and decodes them from the Confluent wire format,
// registering and fetching schemas through a schema registry. A Codec is
// safe for concurrent use; it caches schema ids, writer schemas and the
// compiled conversion plans for the life of the process (a schema id never
// changes meaning in a registry).
type Codec struct {
	client *sr.Client
	header sr.ConfluentHeader

	mu      sync.RWMutex
	ids     map[subjectSchema]int // registered ids, by subject and schema
	writers map[int]*compiled     // writer schemas, by id
	types   map[reflect.Type]*eventType
	readers map[readerKey]error // CanRead results of reader schema × writer id
}

type subjectSchema struct{ subject, schema string }

type readerKey struct {
	schema string
	id     int
}

// eventType is everything the codec needs for one Go event type.
type eventType struct {
	name   string // schema name
	schema *compiled
	plan   plan
}

// NewCodec returns a codec that uses client to register and fetch schemas.
func NewCodec(client *sr.Client) *Codec {
	return &Codec{
		client:  client,
		ids:     map[subjectSchema]int{},
		writers: map[int]*compiled{},
		types:   map[reflect.Type]*eventType{},
		readers: map[readerKey]error{},
	}
}

// Subject is the registry subject of a topic's values (Confluent's
// TopicNameStrategy).
func Subject(topic string) string { return topic + "-value" }

// typeOf returns the compiled event type of ev, which may be a struct or a
// pointer to one.
func (c *Codec) typeOf(ev events.Event) (*eventType, error) {
	rt := reflect.TypeOf(ev)
	if rt == nil {
		return nil, errors.New("nil event")
	}
	if rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	c.mu.RLock()
	et := c.types[rt]
	c.mu.RUnlock()
	if et != nil {
		return et, nil
	}
	name := ev.SchemaName()
	schema, err := embeddedSchema(name)
	if err != nil {
		return nil, err
	}
	p, err := buildPlan(rt, schema.typ)
	if err != nil {
		return nil, fmt.Errorf("event %s and schema %s do not match: %w", rt, name, err)
	}
	et = &eventType{name: name, schema: schema, plan: p}
	c.mu.Lock()
	c.types[rt] = et
	c.mu.Unlock()
	return et, nil
}

// register returns the id of et's schema under subject, registering it on
// first use.
func (c *Codec) register(ctx context.Context, subject string, et *eventType) (int, error) {
	key := subjectSchema{subject, et.name}
	c.mu.RLock()
	id, ok := c.ids[key]
	c.mu.RUnlock()
	if ok {
		return id, nil
	}
	id, err := c.client.RegisterSchema(ctx, subject, sr.Schema{Schema: et.schema.text, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("register schema %s under %s: %w", et.name, subject, err)
	}
	c.mu.Lock()
	c.ids[key] = id
	c.writers[id] = et.schema
	c.mu.Unlock()
	return id, nil
}

// Encode registers ev's schema under the subject "<topic>-value" on first
// use and returns ev in the Confluent wire format. ev may be an event
// struct or a pointer to one.
func (c *Codec) Encode(ctx context.Context, topic string, ev events.Event) ([]byte, error) {
	et, err := c.typeOf(ev)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	id, err := c.register(ctx, Subject(topic), et)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", et.name, err)
	}
	v := reflect.ValueOf(ev)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, fmt.Errorf("encode %s: nil event", et.name)
		}
		v = v.Elem()
	}
	native, err := et.plan.encode(v)
	if err != nil {
		return nil, badRecord("encode %s: %v", et.name, err)
	}
	b, _ := c.header.AppendEncode(make([]byte, 0, 512), id, nil) // never fails
	b, err = et.schema.codec.BinaryFromNative(b, native)
	if err != nil {
		return nil, badRecord("encode %s: %v", et.name, err)
	}
	return b, nil
}

// Decode decodes b into into, which must point to an event struct. The
// data is read with the writer schema named by b's schema id and resolved
// to the schema embedded for into's type: reader fields the writer lacks
// take their defaults, writer fields the reader lacks are dropped.
//
// Errors caused by b itself wrap ErrBadRecord; a registry that cannot be
// reached gives an error without it, which is worth retrying.
func (c *Codec) Decode(ctx context.Context, b []byte, into events.Event) error {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("decode: into must be a non-nil pointer to an event struct, got %T", into)
	}
	et, err := c.typeOf(into)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	id, payload, err := c.header.DecodeID(b)
	if err != nil {
		return badRecord("decode %s: no Confluent header (%d bytes): %v", et.name, len(b), err)
	}
	writer, err := c.writer(ctx, id)
	if err != nil {
		return fmt.Errorf("decode %s: %w", et.name, err)
	}
	if err := c.readable(et, id, writer); err != nil {
		return fmt.Errorf("decode %s: %w", et.name, err)
	}
	native, rest, err := writer.codec.NativeFromBinary(payload)
	if err != nil {
		return badRecord("decode %s with schema %d: %v", et.name, id, err)
	}
	if len(rest) != 0 {
		return badRecord("decode %s with schema %d: %d trailing bytes", et.name, id, len(rest))
	}
	if writer.compact != et.schema.compact {
		if native, err = resolve(et.schema.typ, writer.typ, native); err != nil {
			return badRecord("decode %s: resolve writer schema %d: %v", et.name, id, err)
		}
	}
	out := v.Elem()
	out.SetZero()
	if err := et.plan.decode(native, out); err != nil {
		return badRecord("decode %s: %v", et.name, err)
	}
	return nil
}

// writer returns the schema with the given id, fetching it once.
func (c *Codec) writer(ctx context.Context, id int) (*compiled, error) {
	c.mu.RLock()
	w := c.writers[id]
	c.mu.RUnlock()
	if w != nil {
		return w, nil
	}
	s, err := c.client.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		// Only the registry's own "schema not found" condemns the record;
		// a bare 404 may be a misconfigured URL, which is worth retrying.
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.ErrorCode == 40403 {
			return nil, badRecord("schema id %d is not in the registry", id)
		}
		return nil, fmt.Errorf("fetch schema %d: %w", id, err)
	}
	if s.Type != sr.TypeAvro {
		return nil, badRecord("schema id %d is %s, not Avro", id, s.Type)
	}
	w, err = compile(s.Schema)
	if err != nil {
		return nil, badRecord("schema id %d: %v", id, err)
	}
	c.mu.Lock()
	c.writers[id] = w
	c.mu.Unlock()
	return w, nil
}

// readable checks once per reader type and writer id that the reader can
// resolve the writer's data.
func (c *Codec) readable(et *eventType, id int, writer *compiled) error {
	key := readerKey{et.name, id}
	c.mu.RLock()
	err, ok := c.readers[key]
	c.mu.RUnlock()
	if ok {
		return err
	}
	if writer.compact != et.schema.compact {
		if msgs := CanRead(et.schema.typ, writer.typ); len(msgs) > 0 {
			err = badRecord("writer schema %d cannot be read as %s: %v", id, et.name, msgs)
		}
	}
	c.mu.Lock()
	c.readers[key] = err
	c.mu.Unlock()
	return err
}

// RegisterAll registers the schema of each event under the value subject
// of its topic (map key), as Encode would on first use, so that an
// unreachable registry or an incompatible schema change stops the process
// at start rather than at its first record.
func (c *Codec) RegisterAll(ctx context.Context, topics map[string]events.Event) error {
	for topic, ev := range topics {
		et, err := c.typeOf(ev)
		if err != nil {
			return err
		}
		if _, err := c.register(ctx, Subject(topic), et); err != nil {
			return err
		}
	}
	return nil
}

// Native decodes b with its writer's schema into the generic Avro value
// (records are map[string]any), without knowing its event type, and
// returns the writer schema's id with it.
func (c *Codec) Native(ctx context.Context, b []byte) (map[string]any, int, error) {
	id, payload, err := c.header.DecodeID(b)
	if err != nil {
		return nil, 0, badRecord("no Confluent header (%d bytes): %v", len(b), err)
	}
	writer, err := c.writer(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	native, rest, err := writer.codec.NativeFromBinary(payload)
	if err != nil || len(rest) != 0 {
		return nil, 0, badRecord("decode with schema %d: %v (%d trailing bytes)", id, err, len(rest))
	}
	rec, ok := native.(map[string]any)
	if !ok {
		return nil, 0, badRecord("schema %d: value is %T, not a record", id, native)
	}
	return rec, id, nil
}

// Rewrite changes a record's value without knowing its event type: it
// decodes b with its writer's schema, lets edit change the generic value,
// and encodes it again with the same schema and id. Replays use it to
// start a new run of any event.
func (c *Codec) Rewrite(ctx context.Context, b []byte, edit func(map[string]any) error) ([]byte, error) {
	rec, id, err := c.Native(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	if err := edit(rec); err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	writer, err := c.writer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	out, err := c.header.AppendEncode(nil, id, nil)
	if err != nil {
		return nil, fmt.Errorf("rewrite: header: %w", err)
	}
	if out, err = writer.codec.BinaryFromNative(out, rec); err != nil {
		return nil, fmt.Errorf("rewrite with schema %d: %w", id, err)
	}
	return out, nil
}
