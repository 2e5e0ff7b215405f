package vaultsource

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/kvv2"
)

// source validates the entry and returns it as a runnable source.
func (s KVSource) source() source {
	mount, prefix := cleanMount(s.Mount), cleanMount(s.Prefix)
	key := SourceKV + ":" + mount
	if prefix != "" {
		key += "/" + prefix
	}
	src := source{key: key}
	switch {
	case !validName(mount, true):
		src.invalid = fmt.Errorf("kv entry: mount %q is not a mount path", s.Mount)
	case prefix != "" && !validName(prefix, true):
		src.invalid = fmt.Errorf("kv entry: prefix %q has empty or relative segments", s.Prefix)
	}
	src.run = func(w *walker) ([]discovery.Binding, error) { return discoverKV(w, mount, prefix) }
	return src
}

// discoverKV walks a KV v2 mount's metadata and returns a kv-v2 binding for every secret
// whose custom metadata carries selector tags and whose current version is not deleted.
func discoverKV(w *walker, mount, prefix string) ([]discovery.Binding, error) {
	var out []discovery.Binding
	err := w.walkKV(mount, prefix, func(path string) error {
		if err := w.visit(); err != nil {
			return err
		}
		s, err := w.read(mount + "/metadata/" + path)
		if err != nil {
			return err
		}
		if s == nil || s.Data == nil || !liveVersion(s.Data, w.now) {
			return nil
		}
		t, err := parseTags(stringMap(s.Data["custom_metadata"]))
		if err != nil {
			w.warn("%s/%s skipped: %w", mount, path, err)
			return nil
		}
		if !t.tagged() {
			return nil
		}
		ref := events.CredentialRef{Kind: kvv2.Kind, Mount: mount, Path: path, Fields: t.fields}
		out = append(out, t.binding(ref, SourceKV+":"+mount+"/"+path))
		return nil
	})
	return out, err
}

// liveVersion reports whether a KV v2 metadata response has a current version that is neither
// deleted nor destroyed.
func liveVersion(meta map[string]any, now time.Time) bool {
	cur := num(meta["current_version"])
	if cur <= 0 {
		return false
	}
	versions, _ := meta["versions"].(map[string]any)
	v, ok := versions[strconv.FormatInt(cur, 10)].(map[string]any)
	if !ok {
		return true
	}
	if destroyed, _ := v["destroyed"].(bool); destroyed {
		return false
	}
	if del := str(v["deletion_time"]); del != "" {
		at, err := time.Parse(time.RFC3339Nano, del)
		if err != nil || !at.After(now) {
			return false
		}
	}
	return true
}
