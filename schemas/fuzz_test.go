package schemas_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"prismflow/schemas"
	"prismflow/schemas/events"
)

// schemaSeeds are the embedded schemas plus a few edge cases: recursion,
// unions, defaults, aliases of a sort the parser must refuse or accept.
func schemaSeeds(f *testing.F) []string {
	var out []string
	for _, n := range schemas.Names() {
		s, err := schemas.Source(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, s)
	}
	return append(out,
		`"string"`, `["null","long"]`, `{"type":"array","items":"int"}`,
		`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"],"default":null}]}`,
		`{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`,
		`{"type":"fixed","name":"F","size":16}`,
		`{"type":"map","values":{"type":"long","logicalType":"timestamp-millis"}}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`,
	)
}

// FuzzParseType: a schema that parses can read its own data (CanRead of a
// type against itself finds nothing), and parsing is deterministic.
func FuzzParseType(f *testing.F) {
	for _, s := range schemaSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		typ, err := schemas.ParseType(text)
		if err != nil {
			return
		}
		if msgs := schemas.CanRead(typ, typ); len(msgs) > 0 {
			t.Fatalf("schema cannot read itself: %v\n%s", msgs, text)
		}
		again, err := schemas.ParseType(text)
		if err != nil || schemas.CanRead(typ, again) != nil || schemas.CanRead(again, typ) != nil {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

// FuzzCanRead runs the compatibility check on any two schemas that parse:
// it must terminate without panic (recursive types included), and be
// reflexive on both.
func FuzzCanRead(f *testing.F) {
	seeds := schemaSeeds(f)
	for i, s := range seeds {
		f.Add(s, seeds[(i+1)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, reader, writer string) {
		r, err := schemas.ParseType(reader)
		if err != nil {
			return
		}
		w, err := schemas.ParseType(writer)
		if err != nil {
			return
		}
		_ = schemas.CanRead(r, w)
		_ = schemas.CanRead(w, r)
		if len(schemas.CanRead(r, r)) > 0 || len(schemas.CanRead(w, w)) > 0 {
			t.Fatal("a schema cannot read itself")
		}
	})
}

// FuzzDecode decodes arbitrary bytes as every event type against a real
// registry holding every schema. Each attempt either decodes or fails
// with ErrBadRecord (the runtime dead-letters those and retries the
// rest, so a transient-looking error on bad bytes would retry forever);
// and whatever decodes re-encodes and decodes to the same event.
func FuzzDecode(f *testing.F) {
	codec, _ := newCodec(f)
	ctx := context.Background()
	for _, ev := range allEvents() {
		b, err := codec.Encode(ctx, "fuzz."+reflect.TypeOf(ev).Elem().Name(), ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, ev := range allEvents() {
			into := reflect.New(reflect.TypeOf(ev).Elem()).Interface().(events.Event)
			err := codec.Decode(ctx, b, into)
			if err != nil {
				if !errors.Is(err, schemas.ErrBadRecord) {
					t.Fatalf("decode %T: error is not ErrBadRecord: %v", into, err)
				}
				continue
			}
			topic := "fuzz." + reflect.TypeOf(into).Elem().Name()
			again, err := codec.Encode(ctx, topic, into)
			if err != nil {
				t.Fatalf("re-encode %T: %v", into, err)
			}
			back := reflect.New(reflect.TypeOf(ev).Elem()).Interface().(events.Event)
			if err := codec.Decode(ctx, again, back); err != nil {
				t.Fatalf("decode re-encoded %T: %v", into, err)
			}
			if !reflect.DeepEqual(into, back) {
				t.Fatalf("%T does not survive a round trip:\n%+v\n%+v", into, into, back)
			}
		}
	})
}
