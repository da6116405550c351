package schemas

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, s string) *Type {
	t.Helper()
	typ, err := ParseType(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return typ
}

func rec(fields string) string {
	return `{"type":"record","name":"R","namespace":"n","fields":[` + fields + `]}`
}

func TestCanRead(t *testing.T) {
	enumAB := `{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}`
	enumA := `{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}`
	enumADef := `{"name":"e","type":{"type":"enum","name":"E","symbols":["A","Z"],"default":"Z"}}`
	tests := []struct {
		name           string
		reader, writer string
		ok             bool
		why            string // part of the first reason when not ok
	}{
		{"identical", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"int"}`), true, ""},
		{"added with default", rec(`{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}`), rec(`{"name":"a","type":"int"}`), true, ""},
		{"added without default", rec(`{"name":"a","type":"int"},{"name":"b","type":"string"}`), rec(`{"name":"a","type":"int"}`), false, "/b: field added without a default"},
		{"removed", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"int"},{"name":"b","type":"string"}`), true, ""},
		{"int to long", rec(`{"name":"a","type":"long"}`), rec(`{"name":"a","type":"int"}`), true, ""},
		{"int to double", rec(`{"name":"a","type":"double"}`), rec(`{"name":"a","type":"int"}`), true, ""},
		{"long to float", rec(`{"name":"a","type":"float"}`), rec(`{"name":"a","type":"long"}`), true, ""},
		{"long to int", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"long"}`), false, "writer type long cannot be read as int"},
		{"double to float", rec(`{"name":"a","type":"float"}`), rec(`{"name":"a","type":"double"}`), false, "cannot be read as float"},
		{"string to bytes", rec(`{"name":"a","type":"bytes"}`), rec(`{"name":"a","type":"string"}`), true, ""},
		{"bytes to string", rec(`{"name":"a","type":"string"}`), rec(`{"name":"a","type":"bytes"}`), true, ""},
		{"string to int", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"string"}`), false, "cannot be read"},
		{"enum symbol added", rec(enumAB), rec(enumA), true, ""},
		{"enum symbol removed", rec(enumA), rec(enumAB), false, `symbol "B"`},
		{"enum symbol removed, default", rec(enumADef), rec(enumAB), true, ""},
		{"to union", rec(`{"name":"a","type":["null","long"]}`), rec(`{"name":"a","type":"int"}`), true, ""},
		{"from union, all readable", rec(`{"name":"a","type":"long"}`), rec(`{"name":"a","type":["int","long"]}`), true, ""},
		{"from union, null unreadable", rec(`{"name":"a","type":"long"}`), rec(`{"name":"a","type":["null","long"]}`), false, "writer branch 0"},
		{"union lost a branch", rec(`{"name":"a","type":["null","string"]}`), rec(`{"name":"a","type":["null","string","int"]}`), false, "no branch"},
		{"record renamed", `{"type":"record","name":"S","fields":[]}`, `{"type":"record","name":"R","fields":[]}`, false, "does not match"},
		{"record renamed with alias", `{"type":"record","name":"S","aliases":["R"],"fields":[]}`, `{"type":"record","name":"R","fields":[]}`, true, ""},
		{"field renamed with alias", rec(`{"name":"b","aliases":["a"],"type":"int"}`), rec(`{"name":"a","type":"int"}`), true, ""},
		{"array items promoted", rec(`{"name":"a","type":{"type":"array","items":"long"}}`), rec(`{"name":"a","type":{"type":"array","items":"int"}}`), true, ""},
		{"map values narrowed", rec(`{"name":"a","type":{"type":"map","values":"int"}}`), rec(`{"name":"a","type":{"type":"map","values":"long"}}`), false, "/a/values"},
		{"nested record field added", rec(`{"name":"a","type":{"type":"record","name":"I","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}}`),
			rec(`{"name":"a","type":{"type":"record","name":"I","fields":[{"name":"x","type":"int"}]}}`), false, "/a/y"},
		{"recursive", `{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]},{"name":"v","type":"long"}]}`,
			`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]},{"name":"v","type":"int"}]}`, true, ""},
		{"fixed size", `{"type":"fixed","name":"F","size":4}`, `{"type":"fixed","name":"F","size":8}`, false, "fixed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := CanRead(mustParse(t, tt.reader), mustParse(t, tt.writer))
			if tt.ok != (len(msgs) == 0) {
				t.Fatalf("CanRead = %v, want ok=%v", msgs, tt.ok)
			}
			if !tt.ok && !strings.Contains(msgs[0], tt.why) {
				t.Fatalf("reason %q does not mention %q", msgs[0], tt.why)
			}
		})
	}
}

func TestParseTypeRejects(t *testing.T) {
	for _, s := range []string{
		`not json`,
		`{"type":"record","fields":[]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`,
		`{"type":"enum","name":"E","symbols":["A"],"default":"B"}`,
		`["int",["null"]]`,
	} {
		if _, err := ParseType(s); err == nil {
			t.Errorf("ParseType(%s) succeeded", s)
		}
	}
}

// resolve must follow the same rules CanRead checks, on data.
func TestResolveUnionsAndPromotions(t *testing.T) {
	w := mustParse(t, rec(`{"name":"a","type":["null","int"]},{"name":"b","type":"int"},{"name":"c","type":"string"}`))
	r := mustParse(t, rec(`{"name":"a","type":["null","long"]},{"name":"b","type":["null","double"]},{"name":"c","type":"bytes"},{"name":"d","type":["null","string"],"default":null}`))
	if msgs := CanRead(r, w); len(msgs) > 0 {
		t.Fatal(msgs)
	}
	got, err := resolve(r, w, map[string]any{"a": map[string]any{"int": int32(7)}, "b": int32(2), "c": "x"})
	if err != nil {
		t.Fatal(err)
	}
	m := got.(map[string]any)
	if a := m["a"].(map[string]any)["long"]; a != int64(7) {
		t.Errorf("a = %#v", m["a"])
	}
	if b := m["b"].(map[string]any)["double"]; b != float64(2) {
		t.Errorf("b = %#v", m["b"])
	}
	if c := m["c"].([]byte); string(c) != "x" {
		t.Errorf("c = %#v", m["c"])
	}
	if d, ok := m["d"]; !ok || d != nil {
		t.Errorf("d = %#v, %v", d, ok)
	}
}
