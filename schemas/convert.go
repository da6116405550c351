package schemas

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// This file converts between Go values and goavro's native form
// (map[string]any records, []any arrays, map[string]any maps, string
// enums, time.Time timestamps, map[string]any{branch: v} unions).
//
// The conversion is compiled once per Go type against its Avro schema into
// a tree of closures (a "plan"), so the per-record work is a walk over
// precomputed field indexes with no tag parsing, name lookups or type
// switches on reflect.Type. Mismatches between a struct and its schema are
// found when the plan is built, not on some later record.

type encodeFn func(v reflect.Value) (any, error)
type decodeFn func(n any, v reflect.Value) error

type plan struct {
	encode encodeFn
	decode decodeFn
}

var timeType = reflect.TypeFor[time.Time]()

// buildPlan compiles the conversion between Go type gt and Avro type at.
func buildPlan(gt reflect.Type, at *Type) (plan, error) {
	if at.Kind == KindUnion {
		return unionPlan(gt, at)
	}
	if gt == timeType {
		if at.Kind != KindLong {
			return plan{}, fmt.Errorf("time.Time needs a long timestamp-millis, schema has %s", at.Kind)
		}
		return timePlan(), nil
	}
	switch at.Kind {
	case KindRecord:
		return recordPlan(gt, at)
	case KindArray:
		if gt.Kind() != reflect.Slice {
			return plan{}, fmt.Errorf("array needs a slice, Go type is %s", gt)
		}
		return arrayPlan(gt, at)
	case KindMap:
		if gt.Kind() != reflect.Map || gt.Key().Kind() != reflect.String {
			return plan{}, fmt.Errorf("map needs a map with string keys, Go type is %s", gt)
		}
		return mapPlan(gt, at)
	case KindEnum:
		if gt.Kind() != reflect.String {
			return plan{}, fmt.Errorf("enum %s needs a string type, Go type is %s", at.Name, gt)
		}
		return enumPlan(at), nil
	}
	return primitivePlan(gt, at)
}

func recordPlan(gt reflect.Type, at *Type) (plan, error) {
	if gt.Kind() != reflect.Struct {
		return plan{}, fmt.Errorf("record %s needs a struct, Go type is %s", at.Name, gt)
	}
	type fieldPlan struct {
		name  string
		index int
		plan
	}
	var fields []fieldPlan
	for i := range gt.NumField() {
		sf := gt.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("avro"), ",")
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		af := at.Field(tag)
		if af == nil {
			return plan{}, fmt.Errorf("record %s has no field %q for %s.%s", at.Name, tag, gt.Name(), sf.Name)
		}
		p, err := buildPlan(sf.Type, af.Type)
		if err != nil {
			return plan{}, fmt.Errorf("%s.%s: %w", gt.Name(), sf.Name, err)
		}
		fields = append(fields, fieldPlan{name: tag, index: i, plan: p})
	}
	for _, af := range at.Fields {
		found := false
		for _, f := range fields {
			found = found || f.name == af.Name
		}
		if !found && !af.HasDefault {
			return plan{}, fmt.Errorf("record %s field %q has neither a Go field in %s nor a default", at.Name, af.Name, gt)
		}
	}
	return plan{
		encode: func(v reflect.Value) (any, error) {
			m := make(map[string]any, len(fields))
			for _, f := range fields {
				n, err := f.encode(v.Field(f.index))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.name, err)
				}
				m[f.name] = n
			}
			return m, nil
		},
		decode: func(n any, v reflect.Value) error {
			m, ok := n.(map[string]any)
			if !ok {
				return fmt.Errorf("record %s: got %T", at.Name, n)
			}
			for _, f := range fields {
				fv, ok := m[f.name]
				if !ok {
					continue // absent in the writer and without default: zero value
				}
				if err := f.decode(fv, v.Field(f.index)); err != nil {
					return fmt.Errorf("%s: %w", f.name, err)
				}
			}
			return nil
		},
	}, nil
}

func arrayPlan(gt reflect.Type, at *Type) (plan, error) {
	if gt.Elem().Kind() == reflect.Uint8 {
		return plan{}, fmt.Errorf("array needs a slice, Go type is %s (bytes?)", gt)
	}
	item, err := buildPlan(gt.Elem(), at.Items)
	if err != nil {
		return plan{}, fmt.Errorf("items: %w", err)
	}
	return plan{
		encode: func(v reflect.Value) (any, error) {
			out := make([]any, v.Len())
			for i := range out {
				n, err := item.encode(v.Index(i))
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", i, err)
				}
				out[i] = n
			}
			return out, nil
		},
		decode: func(n any, v reflect.Value) error {
			l, ok := n.([]any)
			if !ok {
				return fmt.Errorf("array: got %T", n)
			}
			if len(l) == 0 {
				v.SetZero()
				return nil
			}
			s := reflect.MakeSlice(gt, len(l), len(l))
			for i, x := range l {
				if err := item.decode(x, s.Index(i)); err != nil {
					return fmt.Errorf("[%d]: %w", i, err)
				}
			}
			v.Set(s)
			return nil
		},
	}, nil
}

func mapPlan(gt reflect.Type, at *Type) (plan, error) {
	val, err := buildPlan(gt.Elem(), at.Values)
	if err != nil {
		return plan{}, fmt.Errorf("values: %w", err)
	}
	return plan{
		encode: func(v reflect.Value) (any, error) {
			out := make(map[string]any, v.Len())
			it := v.MapRange()
			for it.Next() {
				n, err := val.encode(it.Value())
				if err != nil {
					return nil, fmt.Errorf("[%q]: %w", it.Key().String(), err)
				}
				out[it.Key().String()] = n
			}
			return out, nil
		},
		decode: func(n any, v reflect.Value) error {
			m, ok := n.(map[string]any)
			if !ok {
				return fmt.Errorf("map: got %T", n)
			}
			if len(m) == 0 {
				v.SetZero()
				return nil
			}
			out := reflect.MakeMapWithSize(gt, len(m))
			elem := reflect.New(gt.Elem()).Elem()
			for k, x := range m {
				elem.SetZero()
				if err := val.decode(x, elem); err != nil {
					return fmt.Errorf("[%q]: %w", k, err)
				}
				out.SetMapIndex(reflect.ValueOf(k).Convert(gt.Key()), elem)
			}
			v.Set(out)
			return nil
		},
	}, nil
}

// enumPlan maps a Go string type to an Avro enum. An empty Go value is
// written as the enum's default, so a zero struct stays encodable.
func enumPlan(at *Type) plan {
	return plan{
		encode: func(v reflect.Value) (any, error) {
			s := v.String()
			if s == "" && at.HasEnumDef {
				return at.EnumDefault, nil
			}
			if !contains(at.Symbols, s) {
				return nil, fmt.Errorf("%q is not a symbol of enum %s %v", s, at.Name, at.Symbols)
			}
			return s, nil
		},
		decode: func(n any, v reflect.Value) error {
			s, ok := n.(string)
			if !ok {
				return fmt.Errorf("enum %s: got %T", at.Name, n)
			}
			v.SetString(s)
			return nil
		},
	}
}

func timePlan() plan {
	return plan{
		encode: func(v reflect.Value) (any, error) {
			var t time.Time
			if v.CanAddr() {
				t = *v.Addr().Interface().(*time.Time) // no copy into an interface
			} else {
				t = v.Interface().(time.Time)
			}
			if t.IsZero() {
				return int64(0), nil
			}
			return t.UnixMilli(), nil
		},
		decode: func(n any, v reflect.Value) error {
			var t time.Time
			switch x := n.(type) {
			case time.Time:
				t = x
			case int64: // a writer without the logical type
				t = millisTime(x)
			default:
				return fmt.Errorf("timestamp: got %T", n)
			}
			// The epoch stands for the zero time.Time: Go code tests IsZero.
			if t.UnixMilli() == 0 {
				t = time.Time{}
			}
			if v.CanAddr() {
				*v.Addr().Interface().(*time.Time) = t // no boxing
			} else {
				v.Set(reflect.ValueOf(t))
			}
			return nil
		},
	}
}

// unionPlan maps a pointer to a ["null", T] union (either order).
func unionPlan(gt reflect.Type, at *Type) (plan, error) {
	if len(at.Branches) != 2 || gt.Kind() != reflect.Pointer {
		return plan{}, fmt.Errorf("only [null, T] unions as pointers are supported, Go type is %s", gt)
	}
	other := at.Branches[0]
	if other.Kind == KindNull {
		other = at.Branches[1]
	} else if at.Branches[1].Kind != KindNull {
		return plan{}, fmt.Errorf("union without null branch")
	}
	inner, err := buildPlan(gt.Elem(), other)
	if err != nil {
		return plan{}, err
	}
	name := other.unionBranchName()
	return plan{
		encode: func(v reflect.Value) (any, error) {
			if v.IsNil() {
				return nil, nil
			}
			n, err := inner.encode(v.Elem())
			if err != nil {
				return nil, err
			}
			return map[string]any{name: n}, nil
		},
		decode: func(n any, v reflect.Value) error {
			if n == nil {
				v.SetZero()
				return nil
			}
			m, ok := n.(map[string]any)
			if !ok {
				return fmt.Errorf("union: got %T", n)
			}
			x, ok := m[name]
			if !ok {
				return fmt.Errorf("union: unexpected branch in %v", m)
			}
			p := reflect.New(gt.Elem())
			if err := inner.decode(x, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		},
	}, nil
}

func primitivePlan(gt reflect.Type, at *Type) (plan, error) {
	k := gt.Kind()
	mismatch := fmt.Errorf("avro %s cannot hold Go %s", at.Kind, gt)
	switch at.Kind {
	case KindBoolean:
		if k != reflect.Bool {
			return plan{}, mismatch
		}
		return plan{
			encode: func(v reflect.Value) (any, error) { return v.Bool(), nil },
			decode: func(n any, v reflect.Value) error {
				b, ok := n.(bool)
				if !ok {
					return fmt.Errorf("boolean: got %T", n)
				}
				v.SetBool(b)
				return nil
			},
		}, nil
	case KindInt, KindLong:
		if k < reflect.Int || k > reflect.Int64 {
			return plan{}, mismatch
		}
		long := at.Kind == KindLong
		return plan{
			encode: func(v reflect.Value) (any, error) {
				i := v.Int()
				if long {
					return i, nil
				}
				if int64(int32(i)) != i {
					return nil, fmt.Errorf("%d overflows an Avro int", i)
				}
				return int32(i), nil
			},
			decode: func(n any, v reflect.Value) error {
				var i int64
				switch x := n.(type) {
				case int32:
					i = int64(x)
				case int64:
					i = x
				case time.Time:
					i = x.UnixMilli()
				default:
					return fmt.Errorf("%s: got %T", at.Kind, n)
				}
				if v.OverflowInt(i) {
					return fmt.Errorf("%d overflows %s", i, gt)
				}
				v.SetInt(i)
				return nil
			},
		}, nil
	case KindFloat, KindDouble:
		if k != reflect.Float32 && k != reflect.Float64 {
			return plan{}, mismatch
		}
		double := at.Kind == KindDouble
		return plan{
			encode: func(v reflect.Value) (any, error) {
				if double {
					return v.Float(), nil
				}
				return float32(v.Float()), nil
			},
			decode: func(n any, v reflect.Value) error {
				switch x := n.(type) {
				case float32:
					v.SetFloat(float64(x))
				case float64:
					v.SetFloat(x)
				default:
					return fmt.Errorf("%s: got %T", at.Kind, n)
				}
				return nil
			},
		}, nil
	case KindString, KindBytes:
		isBytes := k == reflect.Slice && gt.Elem().Kind() == reflect.Uint8
		if k != reflect.String && !isBytes {
			return plan{}, mismatch
		}
		wantBytes := at.Kind == KindBytes
		return plan{
			encode: func(v reflect.Value) (any, error) {
				switch {
				case isBytes && wantBytes:
					return v.Bytes(), nil
				case isBytes:
					return string(v.Bytes()), nil
				case wantBytes:
					return []byte(v.String()), nil
				}
				return v.String(), nil
			},
			decode: func(n any, v reflect.Value) error {
				switch x := n.(type) {
				case string:
					if isBytes {
						v.SetBytes([]byte(x))
					} else {
						v.SetString(x)
					}
				case []byte:
					// goavro's []byte aliases the record's buffer; the event
					// must not.
					if isBytes {
						if len(x) == 0 {
							v.SetZero()
						} else {
							v.SetBytes(append([]byte(nil), x...))
						}
					} else {
						v.SetString(string(x))
					}
				default:
					return fmt.Errorf("%s: got %T", at.Kind, n)
				}
				return nil
			},
		}, nil
	}
	return plan{}, mismatch
}
