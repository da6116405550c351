package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Kind is the kind of an Avro type.
type Kind uint8

// The Avro type kinds.
const (
	KindNull Kind = iota
	KindBoolean
	KindInt
	KindLong
	KindFloat
	KindDouble
	KindBytes
	KindString
	KindRecord
	KindEnum
	KindArray
	KindMap
	KindFixed
	KindUnion
)

var kindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "array", "map", "fixed", "union"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Type is a parsed Avro schema: the small model that schema resolution and
// the compatibility checks work on. goavro compiles schemas into closures
// and exposes none of their structure, hence this parallel model. Types
// form a graph (a record may refer to itself by name); treat them as
// read-only once parsed.
type Type struct {
	Kind    Kind
	Name    string // full name of a record, enum or fixed
	Logical string // logicalType, e.g. "timestamp-millis"
	Aliases []string

	Fields      []Field  // record
	Symbols     []string // enum
	EnumDefault string   // enum; valid when HasEnumDefault
	HasEnumDef  bool
	Items       *Type   // array
	Values      *Type   // map
	Branches    []*Type // union
	Size        int     // fixed
}

// Field is one field of a record.
type Field struct {
	Name       string
	Aliases    []string
	Type       *Type
	Default    any // JSON-decoded default (numbers as json.Number)
	HasDefault bool
}

// Field returns the field called name, or nil.
func (t *Type) Field(name string) *Field {
	for i := range t.Fields {
		if t.Fields[i].Name == name {
			return &t.Fields[i]
		}
	}
	return nil
}

// shortName is the name without its namespace: Avro matches named types of
// reader and writer by unqualified name when resolving.
func shortName(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[i+1:]
	}
	return full
}

// unionBranchName is the key goavro uses for a union branch in its native
// form (map[string]any{name: value}).
func (t *Type) unionBranchName() string {
	switch t.Kind {
	case KindRecord, KindEnum, KindFixed:
		return t.Name
	}
	if t.Logical != "" {
		return t.Kind.String() + "." + t.Logical
	}
	return t.Kind.String()
}

// ParseType parses the JSON text of an Avro schema.
func ParseType(text string) (*Type, error) {
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("parse avro schema: %w", err)
	}
	p := parser{named: map[string]*Type{}}
	t, err := p.parse(v, "")
	if err != nil {
		return nil, fmt.Errorf("parse avro schema: %w", err)
	}
	return t, nil
}

type parser struct {
	named map[string]*Type
}

var primitives = map[string]Kind{
	"null": KindNull, "boolean": KindBoolean, "int": KindInt, "long": KindLong,
	"float": KindFloat, "double": KindDouble, "bytes": KindBytes, "string": KindString,
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func (p *parser) parse(v any, ns string) (*Type, error) {
	switch v := v.(type) {
	case string:
		if k, ok := primitives[v]; ok {
			return &Type{Kind: k}, nil
		}
		if t, ok := p.named[fullName(v, ns)]; ok {
			return t, nil
		}
		if t, ok := p.named[v]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", v)
	case []any:
		u := &Type{Kind: KindUnion}
		for _, b := range v {
			bt, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			if bt.Kind == KindUnion {
				return nil, errors.New("union directly inside a union")
			}
			u.Branches = append(u.Branches, bt)
		}
		return u, nil
	case map[string]any:
		return p.parseObject(v, ns)
	}
	return nil, fmt.Errorf("unexpected schema element %T", v)
}

func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		if s, ok := s.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) define(m map[string]any, ns string, kind Kind) (*Type, string, error) {
	name, _ := m["name"].(string)
	if name == "" {
		return nil, "", fmt.Errorf("%s without a name", kind)
	}
	if explicit, ok := m["namespace"].(string); ok && !strings.Contains(name, ".") {
		ns = explicit
	}
	full := fullName(name, ns)
	if _, dup := p.named[full]; dup {
		return nil, "", fmt.Errorf("type %q defined twice", full)
	}
	t := &Type{Kind: kind, Name: full}
	for _, a := range stringList(m["aliases"]) {
		t.Aliases = append(t.Aliases, fullName(a, namespaceOf(full)))
	}
	// Registered before its fields are parsed so a record can refer to
	// itself.
	p.named[full] = t
	return t, namespaceOf(full), nil
}

func (p *parser) parseObject(m map[string]any, ns string) (*Type, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, errors.New(`schema object without "type"`)
	}
	name, isString := typ.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]} just wraps another schema.
		return p.parse(typ, ns)
	}
	logical, _ := m["logicalType"].(string)
	if k, ok := primitives[name]; ok {
		return &Type{Kind: k, Logical: logical}, nil
	}
	switch name {
	case "record", "error":
		t, inner, err := p.define(m, ns, KindRecord)
		if err != nil {
			return nil, err
		}
		fields, ok := m["fields"].([]any)
		if !ok {
			return nil, fmt.Errorf("record %q without fields", t.Name)
		}
		seen := map[string]bool{}
		for _, f := range fields {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %q: field is not an object", t.Name)
			}
			fname, _ := fm["name"].(string)
			if fname == "" || seen[fname] {
				return nil, fmt.Errorf("record %q: missing or duplicate field name %q", t.Name, fname)
			}
			seen[fname] = true
			ft, err := p.parse(fm["type"], inner)
			if err != nil {
				return nil, fmt.Errorf("record %q field %q: %w", t.Name, fname, err)
			}
			def, has := fm["default"]
			if has {
				if err := checkDefault(ft, def); err != nil {
					return nil, fmt.Errorf("record %q field %q: bad default: %w", t.Name, fname, err)
				}
			}
			t.Fields = append(t.Fields, Field{Name: fname, Aliases: stringList(fm["aliases"]), Type: ft, Default: def, HasDefault: has})
		}
		return t, nil
	case "enum":
		t, _, err := p.define(m, ns, KindEnum)
		if err != nil {
			return nil, err
		}
		t.Symbols = stringList(m["symbols"])
		if len(t.Symbols) == 0 {
			return nil, fmt.Errorf("enum %q without symbols", t.Name)
		}
		if d, ok := m["default"].(string); ok {
			if !contains(t.Symbols, d) {
				return nil, fmt.Errorf("enum %q default %q is not a symbol", t.Name, d)
			}
			t.EnumDefault, t.HasEnumDef = d, true
		}
		return t, nil
	case "fixed":
		t, _, err := p.define(m, ns, KindFixed)
		if err != nil {
			return nil, err
		}
		n, ok := m["size"].(json.Number)
		if !ok {
			return nil, fmt.Errorf("fixed %q without size", t.Name)
		}
		size, err := n.Int64()
		if err != nil || size < 0 {
			return nil, fmt.Errorf("fixed %q: bad size %v", t.Name, n)
		}
		t.Size = int(size)
		t.Logical = logical
		return t, nil
	case "array":
		items, err := p.parse(m["items"], ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &Type{Kind: KindArray, Items: items}, nil
	case "map":
		values, err := p.parse(m["values"], ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &Type{Kind: KindMap, Values: values}, nil
	}
	// {"type": "SomeNamedType"}
	return p.parse(name, ns)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// checkDefault validates a field default against its type, as the Avro
// specification requires (a union's default matches its first branch).
func checkDefault(t *Type, def any) error {
	_, err := defaultNative(t, def)
	return err
}

// defaultNative turns a JSON default into the goavro native value of t.
func defaultNative(t *Type, def any) (any, error) {
	switch t.Kind {
	case KindNull:
		if def != nil {
			return nil, errors.New("null default must be null")
		}
		return nil, nil
	case KindBoolean:
		b, ok := def.(bool)
		if !ok {
			return nil, fmt.Errorf("want boolean, got %T", def)
		}
		return b, nil
	case KindInt, KindLong, KindFloat, KindDouble:
		n, ok := def.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want number, got %T", def)
		}
		switch t.Kind {
		case KindInt:
			i, err := n.Int64()
			if err != nil || int64(int32(i)) != i {
				return nil, fmt.Errorf("bad int %v", n)
			}
			return int32(i), nil
		case KindLong:
			i, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("bad long %v", n)
			}
			if t.Logical == "timestamp-millis" {
				return millisTime(i), nil
			}
			return i, nil
		case KindFloat:
			f, err := n.Float64()
			return float32(f), err
		default:
			return n.Float64()
		}
	case KindString, KindEnum:
		s, ok := def.(string)
		if !ok {
			return nil, fmt.Errorf("want string, got %T", def)
		}
		if t.Kind == KindEnum && !contains(t.Symbols, s) {
			return nil, fmt.Errorf("%q is not a symbol of %s", s, t.Name)
		}
		return s, nil
	case KindBytes, KindFixed:
		s, ok := def.(string)
		if !ok {
			return nil, fmt.Errorf("want string, got %T", def)
		}
		// JSON defaults of bytes are strings whose code points 0-255 are
		// the bytes.
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 {
				return nil, fmt.Errorf("bytes default has code point %U", r)
			}
			b = append(b, byte(r))
		}
		if t.Kind == KindFixed && len(b) != t.Size {
			return nil, fmt.Errorf("fixed default has %d bytes, want %d", len(b), t.Size)
		}
		return b, nil
	case KindArray:
		l, ok := def.([]any)
		if !ok {
			return nil, fmt.Errorf("want array, got %T", def)
		}
		out := make([]any, len(l))
		for i, x := range l {
			v, err := defaultNative(t.Items, x)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case KindMap:
		m, ok := def.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("want object, got %T", def)
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			v, err := defaultNative(t.Values, x)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case KindRecord:
		m, ok := def.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("want object, got %T", def)
		}
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			x, ok := m[f.Name]
			if !ok {
				if !f.HasDefault {
					return nil, fmt.Errorf("record default lacks field %q", f.Name)
				}
				x = f.Default
			}
			v, err := defaultNative(f.Type, x)
			if err != nil {
				return nil, err
			}
			out[f.Name] = v
		}
		return out, nil
	case KindUnion:
		first := t.Branches[0]
		v, err := defaultNative(first, def)
		if err != nil {
			return nil, err
		}
		if first.Kind == KindNull {
			return nil, nil
		}
		return map[string]any{first.unionBranchName(): v}, nil
	}
	return nil, fmt.Errorf("no default for %s", t.Kind)
}

// CompactJSON returns text with insignificant whitespace removed. The
// registry identifies schemas by this form, so that a schema re-indented
// by a client keeps its id while a changed default or doc does not.
func CompactJSON(text string) (string, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(text)); err != nil {
		return "", err
	}
	return b.String(), nil
}
