package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// Value returns a log field's value with every secret removed, keeping its shape where the log
// can show it:
//   - strings, named string types, byte slices, errors and Stringers become redacted text;
//   - booleans and numbers are returned as they are;
//   - maps, slices, arrays, structs and pointers become the JSON tree the log would show (what
//     json.Marshal makes of them: exported fields, MarshalJSON results) with every string and
//     map key redacted and the values under sensitive keys (see isSensitiveKey) removed;
//   - anything JSON cannot represent becomes its %+v text, redacted.
func (r *Redactor) Value(v any) any {
	switch val := v.(type) {
	case nil:
		return nil
	case string:
		return r.String(val)
	case []byte:
		return r.String(string(val))
	case error:
		return r.String(val.Error())
	case fmt.Stringer:
		return r.String(val.String())
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return v
	case reflect.String:
		return r.String(rv.String())
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return r.String(fmt.Sprintf("%+v", v))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // large integers keep every digit
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return r.String(fmt.Sprintf("%+v", v))
	}
	return r.tree(tree)
}

// tree redacts a decoded JSON value in place: its strings, its object keys, and the values of
// its sensitive keys.
func (r *Redactor) tree(v any) any {
	switch val := v.(type) {
	case string:
		return r.String(val)
	case []any:
		for i := range val {
			val[i] = r.tree(val[i])
		}
		return val
	case map[string]any:
		out := make(map[string]any, len(val))
		for k, x := range val {
			if isSensitiveKey(k) {
				out[r.String(k)] = redactedText
				continue
			}
			out[r.String(k)] = r.tree(x)
		}
		return out
	}
	return v
}
