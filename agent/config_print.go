package agent

import (
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// configField is one leaf of Config with the environment variable that sets it.
type configField struct {
	env            string
	value          reflect.Value
	secret         bool
	hasFileSibling bool
}

var (
	wordRegexp    = regexp.MustCompile("([^A-Z]+|[A-Z]+[^A-Z]+|[A-Z]+)")
	acronymRegexp = regexp.MustCompile("([A-Z]+)([A-Z][^A-Z]+)")
)

// envName splits a Go field name into words the way envconfig's split_words does.
func envName(field string) string {
	var words []string
	for _, w := range wordRegexp.FindAllString(field, -1) {
		if m := acronymRegexp.FindStringSubmatch(w); len(m) == 3 {
			words = append(words, m[1], m[2])
		} else {
			words = append(words, w)
		}
	}
	return strings.ToUpper(strings.Join(words, "_"))
}

// describe lists the leaves of cfg with their environment variable names, in declaration order.
func describe(cfg *Config) []configField {
	var out []configField
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		keys := map[string]bool{}
		start := len(out)
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key := prefix + "_" + envName(f.Name)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(key, v.Field(i))
				continue
			}
			keys[key] = true
			out = append(out, configField{env: key, value: v.Field(i), secret: f.Tag.Get("secret") == "true"})
		}
		for i := start; i < len(out); i++ {
			if keys[out[i].env+"_FILE"] {
				out[i].hasFileSibling = true
			}
		}
	}
	walk(EnvPrefix, reflect.ValueOf(cfg).Elem())
	return out
}

// unusableText stands for the value of a setting Load could not read.
const unusableText = "(unusable: see the problems reported)"

// PrintEffective writes the effective configuration as NAME=value lines, one per setting, with
// secret values masked. A setting Load could not read shows no value but a mark, since the
// agent will not run with it. It is what `rotation-agent config check` shows.
func (c Config) PrintEffective(w io.Writer) error {
	for _, f := range describe(&c) {
		var val string
		switch {
		case c.unread[f.env]:
			val = unusableText
		case f.secret && f.value.String() != "":
			val = "****** (set)"
		case f.secret:
			val = "(unset)"
		case f.value.Kind() == reflect.Slice:
			parts := make([]string, f.value.Len())
			for i := range parts {
				parts[i] = redactURL(fmt.Sprint(f.value.Index(i).Interface()))
			}
			val = strings.Join(parts, ",")
		default:
			val = fmt.Sprint(f.value.Interface())
		}
		if _, err := fmt.Fprintf(w, "%s=%s\n", f.env, val); err != nil {
			return err
		}
	}
	return nil
}
