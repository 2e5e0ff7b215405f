package approle

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// splitDeliverTo splits "<kv-v2 mount>/<path>" at its first slash.
func splitDeliverTo(v string) (mount, path string, err error) {
	v = strings.Trim(v, "/")
	mount, path, ok := strings.Cut(v, "/")
	if !ok || mount == "" || path == "" {
		return "", "", fmt.Errorf("option %s=%q: want <kv-v2 mount>/<path>, e.g. secret/apps/payments", OptionDeliverTo, v)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("option %s=%q: empty or relative path segment", OptionDeliverTo, v)
		}
	}
	return mount, path, nil
}

// parseTTL accepts a Go duration ("10m") or a number of seconds ("600") and returns it in the
// form Vault's X-Vault-Wrap-TTL header takes.
func parseTTL(v string) (string, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, nerr := strconv.Atoi(v)
		if nerr != nil {
			return "", errors.New("want a duration such as 10m")
		}
		d = time.Duration(secs) * time.Second
	}
	if d < time.Second {
		return "", errors.New("want at least one second")
	}
	return strconv.Itoa(int(d/time.Second)) + "s", nil
}

// parseMetadata parses the optional JSON object of extra secret id metadata.
func parseMetadata(v string) (map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, errors.New("want a JSON object of strings, e.g. {\"team\":\"payments\"}")
	}
	for _, k := range []string{MetaChangeID, MetaRound} {
		if _, ok := m[k]; ok {
			return nil, fmt.Errorf("key %q is set by the agent", k)
		}
	}
	return m, nil
}

// str returns v as a string, or "" when it is not one.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// num returns a number from a Vault response (json.Number, float or string), or 0.
func num(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}
