package delivery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// SinksFileVersion is the only sinks file version this agent reads.
const SinksFileVersion = 1

type sinksFile struct {
	Version int        `yaml:"version"`
	Sinks   []sinkYAML `yaml:"sinks"`
}

type sinkYAML struct {
	Credential string  `yaml:"credential"`
	Path       string  `yaml:"path"`
	Format     Format  `yaml:"format"`
	Fields     []Field `yaml:"fields"`
	Mode       string  `yaml:"mode"`
	UID        *int    `yaml:"uid"`
	GID        *int    `yaml:"gid"`
}

// LoadSinks reads a sinks file: which credential goes to which file, in which format. Every
// problem is reported at once, each naming the sink.
func LoadSinks(path string) ([]Sink, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sinks file: %w", err)
	}
	return ParseSinks(path, raw)
}

// ParseSinks is LoadSinks for bytes already read; name is used in messages.
func ParseSinks(name string, raw []byte) ([]Sink, error) {
	var doc sinksFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var errs []error
	if doc.Version != SinksFileVersion {
		errs = append(errs, fmt.Errorf("%s: version must be %d", name, SinksFileVersion))
	}
	if len(doc.Sinks) == 0 {
		errs = append(errs, fmt.Errorf("%s: sinks: at least one sink is required", name))
	}
	paths := map[string]bool{}
	out := make([]Sink, 0, len(doc.Sinks))
	for i, y := range doc.Sinks {
		s := Sink{Credential: y.Credential, Path: y.Path, Format: y.Format, Fields: y.Fields, UID: -1, GID: -1}
		where := fmt.Sprintf("%s: sinks[%d] (%s)", name, i, y.Path)
		if y.Mode != "" {
			m, err := strconv.ParseUint(y.Mode, 8, 32)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: mode %q is not an octal file mode such as 0600", where, y.Mode))
			}
			s.Mode = os.FileMode(m)
		}
		if y.UID != nil {
			s.UID = *y.UID
		}
		if y.GID != nil {
			s.GID = *y.GID
		}
		for _, problem := range s.check() {
			errs = append(errs, fmt.Errorf("%s: %s", where, problem))
		}
		if paths[s.Path] {
			errs = append(errs, fmt.Errorf("%s: another sink writes the same file", where))
		}
		paths[s.Path] = true
		out = append(out, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
