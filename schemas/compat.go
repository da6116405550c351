package schemas

import (
	"fmt"
	"maps"
	"time"
)

// CanRead reports why data written with writer cannot be read with reader,
// following the Avro specification's schema resolution rules: it returns
// nil when every writer datum resolves. The rules:
//   - a reader field missing from the writer needs a default; writer
//     fields unknown to the reader are skipped;
//   - numbers promote int→long→float→double, and string and bytes read
//     each other;
//   - an enum symbol the reader lacks needs the reader enum's default;
//   - named types match by unqualified name or alias;
//   - a writer union needs every branch readable; a reader union needs one
//     branch that reads the writer.
//
// The registry's BACKWARD check is CanRead(new, old); FORWARD is
// CanRead(old, new).
func CanRead(reader, writer *Type) []string {
	c := checker{seen: map[[2]*Type]bool{}}
	c.check(reader, writer, "")
	return c.msgs
}

type checker struct {
	seen map[[2]*Type]bool
	msgs []string
}

func (c *checker) fail(path, format string, args ...any) {
	if path == "" {
		path = "/"
	}
	c.msgs = append(c.msgs, path+": "+fmt.Sprintf(format, args...))
}

// promotes reports whether a writer kind is readable as the reader kind.
func promotes(w, r Kind) bool {
	if w == r {
		return true
	}
	switch w {
	case KindInt:
		return r == KindLong || r == KindFloat || r == KindDouble
	case KindLong:
		return r == KindFloat || r == KindDouble
	case KindFloat:
		return r == KindDouble
	case KindString:
		return r == KindBytes
	case KindBytes:
		return r == KindString
	}
	return false
}

func namesMatch(r, w *Type) bool {
	if shortName(r.Name) == shortName(w.Name) {
		return true
	}
	for _, a := range r.Aliases {
		if a == w.Name || shortName(a) == shortName(w.Name) {
			return true
		}
	}
	return false
}

// readable reports whether r reads w, to pick union branches.
func readable(r, w *Type) bool {
	return len(CanRead(r, w)) == 0
}

// quiet is check without reporting, for trying a union branch. It starts
// from the pairs under check so that recursive types terminate, on a copy
// so that a failed trial leaves no pair assumed good.
func (c *checker) quiet(r, w *Type) bool {
	sub := checker{seen: maps.Clone(c.seen)}
	sub.check(r, w, "")
	return len(sub.msgs) == 0
}

func (c *checker) check(r, w *Type, path string) {
	key := [2]*Type{r, w}
	if c.seen[key] {
		return // recursive types: assume the pair holds while checking it
	}
	c.seen[key] = true

	if w.Kind == KindUnion {
		for i, b := range w.Branches {
			c.check(r, b, fmt.Sprintf("%s[writer branch %d]", path, i))
		}
		return
	}
	if r.Kind == KindUnion {
		for _, b := range r.Branches {
			if c.quiet(b, w) {
				return
			}
		}
		c.fail(path, "reader union has no branch for writer type %s", describe(w))
		return
	}
	if !promotes(w.Kind, r.Kind) {
		c.fail(path, "writer type %s cannot be read as %s", describe(w), describe(r))
		return
	}
	switch r.Kind {
	case KindRecord:
		if !namesMatch(r, w) {
			c.fail(path, "record name %s does not match writer %s", r.Name, w.Name)
			return
		}
		for i := range r.Fields {
			rf := &r.Fields[i]
			wf := writerField(w, rf)
			if wf == nil {
				if !rf.HasDefault {
					c.fail(path+"/"+rf.Name, "field added without a default")
				}
				continue
			}
			c.check(rf.Type, wf.Type, path+"/"+rf.Name)
		}
	case KindEnum:
		if !namesMatch(r, w) {
			c.fail(path, "enum name %s does not match writer %s", r.Name, w.Name)
			return
		}
		if r.HasEnumDef {
			return
		}
		for _, s := range w.Symbols {
			if !contains(r.Symbols, s) {
				c.fail(path, "writer enum symbol %q unknown to the reader, which has no default", s)
			}
		}
	case KindFixed:
		if !namesMatch(r, w) || r.Size != w.Size {
			c.fail(path, "fixed %s[%d] does not match writer %s[%d]", r.Name, r.Size, w.Name, w.Size)
		}
	case KindArray:
		c.check(r.Items, w.Items, path+"/items")
	case KindMap:
		c.check(r.Values, w.Values, path+"/values")
	}
}

// writerField finds the writer's field for a reader field, by name or by
// one of the reader field's aliases.
func writerField(w *Type, rf *Field) *Field {
	if f := w.Field(rf.Name); f != nil {
		return f
	}
	for _, a := range rf.Aliases {
		if f := w.Field(a); f != nil {
			return f
		}
	}
	return nil
}

func describe(t *Type) string {
	switch t.Kind {
	case KindRecord, KindEnum, KindFixed:
		return t.Kind.String() + " " + t.Name
	}
	return t.Kind.String()
}

// resolve turns a goavro native value decoded with writer into the native
// value reader describes: the Avro resolution rules applied to data. The
// caller has established CanRead(reader, writer) == nil, so mismatches
// here mean a corrupt datum and are reported as errors.
func resolve(r, w *Type, v any) (any, error) {
	if w.Kind == KindUnion {
		if v == nil {
			return resolveBranch(r, nullType, nil)
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("union value %T", v)
		}
		for name, inner := range m {
			for _, b := range w.Branches {
				if b.unionBranchName() == name {
					return resolveBranch(r, b, inner)
				}
			}
			return nil, fmt.Errorf("union branch %q not in writer schema", name)
		}
	}
	return resolveBranch(r, w, v)
}

var nullType = &Type{Kind: KindNull}

// resolveBranch resolves a non-union writer value.
func resolveBranch(r, w *Type, v any) (any, error) {
	if r.Kind == KindUnion {
		for _, b := range r.Branches {
			if readable(b, w) {
				out, err := resolveBranch(b, w, v)
				if err != nil || b.Kind == KindNull {
					return nil, err
				}
				return map[string]any{b.unionBranchName(): out}, nil
			}
		}
		return nil, fmt.Errorf("no reader union branch for %s", describe(w))
	}
	switch r.Kind {
	case KindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s: value %T", r.Name, v)
		}
		out := make(map[string]any, len(r.Fields))
		for i := range r.Fields {
			rf := &r.Fields[i]
			wf := writerField(w, rf)
			if wf == nil {
				d, err := defaultNative(rf.Type, rf.Default)
				if err != nil {
					return nil, fmt.Errorf("field %s default: %w", rf.Name, err)
				}
				out[rf.Name] = d
				continue
			}
			fv, err := resolve(rf.Type, wf.Type, m[wf.Name])
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", rf.Name, err)
			}
			out[rf.Name] = fv
		}
		return out, nil
	case KindEnum:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("enum %s: value %T", r.Name, v)
		}
		if contains(r.Symbols, s) {
			return s, nil
		}
		if r.HasEnumDef {
			return r.EnumDefault, nil
		}
		return nil, fmt.Errorf("enum %s: unknown symbol %q", r.Name, s)
	case KindArray:
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("array: value %T", v)
		}
		out := make([]any, len(l))
		for i, x := range l {
			y, err := resolve(r.Items, w.Items, x)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = y
		}
		return out, nil
	case KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map: value %T", v)
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			y, err := resolve(r.Values, w.Values, x)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = y
		}
		return out, nil
	}
	return promote(r, v)
}

// promote converts a primitive native value to the reader's kind and
// logical type.
func promote(r *Type, v any) (any, error) {
	if t, ok := v.(time.Time); ok {
		v = t.UnixMilli() // goavro decodes timestamp-millis to time.Time
	}
	switch r.Kind {
	case KindLong:
		var n int64
		switch x := v.(type) {
		case int32:
			n = int64(x)
		case int64:
			n = x
		default:
			return nil, fmt.Errorf("long: value %T", v)
		}
		if r.Logical == "timestamp-millis" {
			return millisTime(n), nil
		}
		return n, nil
	case KindFloat:
		switch x := v.(type) {
		case int32:
			return float32(x), nil
		case int64:
			return float32(x), nil
		case float32:
			return x, nil
		}
	case KindDouble:
		switch x := v.(type) {
		case int32:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case float32:
			return float64(x), nil
		case float64:
			return x, nil
		}
	case KindString:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case KindBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("%s: value %T", r.Kind, v)
}

func millisTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
