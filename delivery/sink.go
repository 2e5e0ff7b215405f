package delivery

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Format is how a sink file is laid out.
type Format string

// The formats a sink can be written in.
const (
	// FormatRaw writes the value of exactly one field, as it is.
	FormatRaw Format = "raw"
	// FormatEnv writes NAME=value lines, one per field, quoted for a POSIX shell when needed.
	FormatEnv Format = "env"
	// FormatJSON writes one JSON object with a string member per field.
	FormatJSON Format = "json"
	// FormatPEM writes the fields one after another; each must hold PEM blocks.
	FormatPEM Format = "pem"
)

// DefaultMode is the file mode of a sink unless it sets its own.
const DefaultMode os.FileMode = 0o600

// Field maps a field of the credential (From) to a name in the file (As, From when empty).
type Field struct {
	From string `yaml:"from"`
	As   string `yaml:"as"`
}

// Name is the name the field has in the file.
func (f Field) Name() string {
	if f.As != "" {
		return f.As
	}
	return f.From
}

// Sink is one file a credential is written to.
type Sink struct {
	// Credential is the credential identifier, <kind>:<mount>/<path>.
	Credential string `yaml:"credential"`
	// Path is the absolute path of the file, on a volume shared with the application.
	Path string `yaml:"path"`
	// Format is raw, env, json or pem.
	Format Format `yaml:"format"`
	// Fields are the credential's fields to write, in order.
	Fields []Field `yaml:"fields"`
	// Mode is the file mode; DefaultMode when zero.
	Mode os.FileMode `yaml:"-"`
	// UID and GID, when not negative, are given the file (the agent needs CAP_CHOWN for
	// another owner than its own).
	UID int `yaml:"-"`
	GID int `yaml:"-"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// check reports what is wrong with a sink definition, nil when nothing is.
func (s Sink) check() []string {
	var bad []string
	if s.Credential == "" {
		bad = append(bad, "credential is required")
	}
	if !filepath.IsAbs(s.Path) || filepath.Clean(s.Path) != s.Path {
		bad = append(bad, fmt.Sprintf("path %q must be absolute and clean", s.Path))
	}
	if len(s.Fields) == 0 {
		bad = append(bad, "fields: at least one is required")
	}
	seen := map[string]bool{}
	for _, f := range s.Fields {
		if f.From == "" {
			bad = append(bad, "fields: every field needs from")
		}
		if seen[f.Name()] {
			bad = append(bad, fmt.Sprintf("fields: %q is written twice", f.Name()))
		}
		seen[f.Name()] = true
		if s.Format == FormatEnv && !envName.MatchString(f.Name()) {
			bad = append(bad, fmt.Sprintf("fields: %q is not a variable name (letters, digits, _)", f.Name()))
		}
	}
	switch s.Format {
	case FormatRaw:
		if len(s.Fields) > 1 {
			bad = append(bad, "format raw writes exactly one field")
		}
	case FormatEnv, FormatJSON, FormatPEM:
	default:
		bad = append(bad, fmt.Sprintf("format %q is not raw, env, json or pem", s.Format))
	}
	if s.Mode&^0o777 != 0 || s.Mode&0o007 != 0 {
		bad = append(bad, fmt.Sprintf("mode %#o: the file must not be readable by others", s.Mode))
	}
	return bad
}

// Render lays out the credential's values in the sink's format. values maps a field name to
// its value; a field the credential lacks is an error that names the field, never a value.
func (s Sink) Render(values map[string]string) ([]byte, error) {
	get := func(f Field) (string, error) {
		v, ok := values[f.From]
		if !ok {
			return "", fmt.Errorf("sink %s: the credential has no field %q", s.Path, f.From)
		}
		return v, nil
	}
	var b bytes.Buffer
	switch s.Format {
	case FormatRaw:
		v, err := get(s.Fields[0])
		if err != nil {
			return nil, err
		}
		b.WriteString(v)
	case FormatEnv:
		for _, f := range s.Fields {
			v, err := get(f)
			if err != nil {
				return nil, err
			}
			b.WriteString(f.Name() + "=" + shellQuote(v) + "\n")
		}
	case FormatJSON:
		obj := make(map[string]string, len(s.Fields))
		for _, f := range s.Fields {
			v, err := get(f)
			if err != nil {
				return nil, err
			}
			obj[f.Name()] = v
		}
		raw, err := json.MarshalIndent(obj, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", s.Path, err)
		}
		b.Write(raw)
		b.WriteByte('\n')
	case FormatPEM:
		for _, f := range s.Fields {
			v, err := get(f)
			if err != nil {
				return nil, err
			}
			v = strings.TrimSpace(v)
			if block, _ := pem.Decode([]byte(v)); block == nil {
				return nil, fmt.Errorf("sink %s: field %q does not hold PEM data", s.Path, f.From)
			}
			b.WriteString(v + "\n")
		}
	default:
		return nil, fmt.Errorf("sink %s: unknown format %q", s.Path, s.Format)
	}
	return b.Bytes(), nil
}

// shellQuote returns v unchanged when it is made of characters no shell or env-file reader
// treats specially, and single-quoted otherwise.
func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, needsQuote) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// needsQuote reports whether a shell or an env-file reader could treat r specially.
func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_./+:@%,=", r)
}

// Write puts content in the sink's file atomically: a temporary file in the same directory,
// written, given its mode and owner, synced, renamed over the file, and the directory synced.
// A reader sees the old file or the new one, never a part.
func (s Sink) Write(content []byte) error {
	mode := s.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	return writeAtomic(s.Path, content, mode, s.UID, s.GID)
}

func writeAtomic(path string, content []byte, mode os.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// The temporary file is created 0600; set the final mode before any byte is written.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: set owner: %w", path, err)
		}
	}
	if _, err := tmp.Write(content); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		syncErr := d.Sync()
		_ = d.Close()
		if syncErr != nil && !errors.Is(syncErr, os.ErrInvalid) {
			return fmt.Errorf("write %s: sync directory: %w", path, syncErr)
		}
	}
	return nil
}

// VersionPath is the file, next to a sink, that names the delivery the sink holds: the token
// the application reports on its health URL once it uses the new credential.
func VersionPath(sinkPath string) string { return sinkPath + ".version" }

// WriteVersion writes the delivery token next to the sink, after the sink itself.
func (s Sink) WriteVersion(token string) error {
	mode := s.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	return writeAtomic(VersionPath(s.Path), []byte(token+"\n"), mode, s.UID, s.GID)
}
