package agent

import (
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// Log field names used across the agent.
const (
	FieldChangeID   = "change_id"
	FieldCredential = "credential"
	FieldAction     = "action"
	FieldEventID    = "event_id"
)

// redactedText replaces anything the Redactor removes.
const redactedText = "[REDACTED]"

// sensitiveKeys are log field names whose values are always removed, whatever they hold.
var sensitiveKeys = []string{"password", "secret", "secret_id", "token", "jwt", "value", "credential_value", "seed", "private_key", "authorization"}

// vaultTokenPattern matches Vault service, batch and recovery tokens and legacy s. tokens.
var vaultTokenPattern = regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}|\bs\.[A-Za-z0-9]{24}\b`)

// Redactor removes secret values from text. It knows the exact values it was given (the agent's
// own credentials, values generated during a rotation) and the shape of Vault tokens.
type Redactor struct {
	mu     sync.RWMutex
	values map[string]struct{}
	// ordered holds the values longest first, so a value that contains another is removed whole.
	ordered []string
}

// NewRedactor returns a Redactor that knows no values yet.
func NewRedactor() *Redactor { return &Redactor{values: map[string]struct{}{}} }

// reorder rebuilds ordered from values; the caller holds the write lock.
func (r *Redactor) reorder() {
	r.ordered = r.ordered[:0]
	for v := range r.values {
		r.ordered = append(r.ordered, v)
	}
	sort.Slice(r.ordered, func(i, j int) bool { return len(r.ordered[i]) > len(r.ordered[j]) })
}

// Add makes the Redactor remove value from now on. Values shorter than 6 bytes are ignored to
// avoid mangling ordinary words.
func (r *Redactor) Add(value string) {
	if len(value) < 6 {
		return
	}
	r.mu.Lock()
	if _, known := r.values[value]; !known {
		r.values[value] = struct{}{}
		r.reorder()
	}
	r.mu.Unlock()
}

// Forget stops removing value, once it no longer exists anywhere in the agent's memory.
func (r *Redactor) Forget(value string) {
	r.mu.Lock()
	if _, known := r.values[value]; known {
		delete(r.values, value)
		r.reorder()
	}
	r.mu.Unlock()
}

// String returns s with every known secret value and every Vault token replaced.
func (r *Redactor) String(s string) string {
	r.mu.RLock()
	for _, v := range r.ordered {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redactedText)
		}
	}
	r.mu.RUnlock()
	return vaultTokenPattern.ReplaceAllString(s, redactedText)
}

// Hook returns a logrus hook that applies the Redactor to the message and every field,
// whatever the field's type (see Value).
func (r *Redactor) Hook() logrus.Hook { return redactionHook{r} }

type redactionHook struct{ r *Redactor }

func (h redactionHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h redactionHook) Fire(e *logrus.Entry) error {
	e.Message = h.r.String(e.Message)
	for k, v := range e.Data {
		if isSensitiveKey(k) {
			e.Data[k] = redactedText
			continue
		}
		e.Data[k] = h.r.Value(v)
	}
	return nil
}

func isSensitiveKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range sensitiveKeys {
		if k == s || strings.HasSuffix(k, "_"+s) {
			return true
		}
	}
	return false
}

// NewLogger returns a JSON logger at the given level that writes to out through redactor.
func NewLogger(out io.Writer, level string, redactor *Redactor) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	l := logrus.New()
	l.SetOutput(out)
	l.SetLevel(lvl)
	l.SetFormatter(&logrus.JSONFormatter{TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	l.AddHook(redactor.Hook())
	return l, nil
}
