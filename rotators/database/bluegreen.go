package database

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// staticOptions are the parsed options of a static role credential.
type staticOptions struct {
	pair        string
	markerMount string
	markerPath  string
	retire      string
}

func (o staticOptions) paired() bool { return o.pair != "" }

// staticOpts checks the action and parses the options of a static role credential.
func staticOpts(ref events.CredentialRef) (staticOptions, error) {
	if err := checkRotate(ref); err != nil {
		return staticOptions{}, err
	}
	o := staticOptions{pair: ref.Options[OptionPair], retire: ref.Options[OptionRetire]}
	marker := strings.Trim(ref.Options[OptionActiveMarker], "/")
	if (o.pair == "") != (marker == "") {
		return staticOptions{}, rotators.Permanent(fmt.Errorf("%s: options %s and %s go together", ref.ID(), OptionPair, OptionActiveMarker))
	}
	if o.pair != "" && o.pair == ref.Path {
		return staticOptions{}, rotators.Permanent(fmt.Errorf("%s: option %s names the role itself", ref.ID(), OptionPair))
	}
	if marker != "" {
		var ok bool
		o.markerMount, o.markerPath, ok = strings.Cut(marker, "/")
		if !ok || o.markerPath == "" {
			return staticOptions{}, rotators.Permanent(fmt.Errorf("%s: option %s=%q: want <kv-v2 mount>/<path>", ref.ID(), OptionActiveMarker, marker))
		}
	}
	switch {
	case o.retire != "" && !o.paired():
		return staticOptions{}, rotators.Permanent(fmt.Errorf("%s: option %s applies to a pair only", ref.ID(), OptionRetire))
	case o.retire != "" && o.retire != "rotate" && o.retire != "keep":
		return staticOptions{}, rotators.Permanent(fmt.Errorf("%s: option %s=%q: want rotate or keep", ref.ID(), OptionRetire, o.retire))
	}
	return o, nil
}

// marker is the KV v2 secret naming the active role of a pair.
type marker struct {
	active  string
	version int
	data    map[string]any
}

// readMarker reads the current version of the marker.
func (r *StaticRoleRotator) readMarker(ctx context.Context, ref events.CredentialRef, o staticOptions) (marker, error) {
	sec, err := r.client.KVv2(o.markerMount).Get(ctx, o.markerPath)
	if err != nil {
		return marker{}, classify("read active marker "+o.markerMount+"/"+o.markerPath, ref, err)
	}
	m := marker{active: str(sec.Data[MarkerField]), data: sec.Data}
	if sec.VersionMetadata != nil {
		m.version = sec.VersionMetadata.Version
	}
	return m, nil
}

// inactiveOf returns the role of the pair the marker does not name.
func inactiveOf(ref events.CredentialRef, o staticOptions, active string) (string, error) {
	switch active {
	case ref.Path:
		return o.pair, nil
	case o.pair:
		return ref.Path, nil
	}
	return "", rotators.Permanent(fmt.Errorf("%s: field %q of %s/%s is %q, which is neither %q nor %q",
		ref.ID(), MarkerField, o.markerMount, o.markerPath, active, ref.Path, o.pair))
}

// flipMarker points the marker at the rotated role with check-and-set on the version it read.
// A marker already naming the rotated role is adopted; one naming a third value, or changed
// to another role since prepare, is left alone.
func (r *StaticRoleRotator) flipMarker(ctx context.Context, req rotators.Request, st *rotators.State, o staticOptions) error {
	ref := req.Credential
	rotated, before := st.Note(noteRole), st.Note(noteActiveBefore)
	m, err := r.readMarker(ctx, ref, o)
	if err != nil {
		return err
	}
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	if m.active == rotated {
		st.After["active_role"], st.After["marker_version"] = rotated, strconv.Itoa(m.version)
		return nil
	}
	if m.active != before {
		return rotators.Permanent(fmt.Errorf("%s: field %q of %s/%s changed outside the agent to %q (was %q); not switched to %q",
			ref.ID(), MarkerField, o.markerMount, o.markerPath, m.active, before, rotated))
	}
	data := maps.Clone(m.data)
	if data == nil {
		data = map[string]any{}
	}
	data[MarkerField] = rotated
	written, err := r.client.KVv2(o.markerMount).Put(ctx, o.markerPath, data, vault.WithCheckAndSet(m.version))
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != 429 &&
			strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			// Someone wrote the marker in between; the next attempt reads it again.
			return rotators.Retryable(fmt.Errorf("%s: %s/%s changed while switching it: %w", ref.ID(), o.markerMount, o.markerPath, err))
		}
		return classify("switch active marker "+o.markerMount+"/"+o.markerPath, ref, err)
	}
	st.After["active_role"], st.After["marker_version"] = rotated, strconv.Itoa(written.VersionMetadata.Version)
	return nil
}

// retirePair rotates the previously active role after the overlap window (or keeps it), once
// the marker still names the rotated role, and proves its old password is refused.
func (r *StaticRoleRotator) retirePair(ctx context.Context, req rotators.Request, st *rotators.State, o staticOptions) error {
	ref := req.Credential
	rotated, old := st.Note(noteRole), st.Note(noteActiveBefore)
	st.After["previous_active_role"] = old
	if o.retire == "keep" {
		st.After["previous_active"] = "kept"
		return nil
	}
	m, err := r.readMarker(ctx, ref, o)
	if err != nil {
		return err
	}
	if m.active != rotated {
		return rotators.Permanent(fmt.Errorf("%s: field %q of %s/%s names %q, not %q: consumers may use %q again, so it is not rotated",
			ref.ID(), MarkerField, o.markerMount, o.markerPath, m.active, rotated, old))
	}
	role, err := r.rotateOnce(ctx, req, st, old, noteActiveBaseLVR, noteRetireRotatingAt)
	if err != nil {
		return err
	}
	checked, err := r.proveRotated(ctx, req, role)
	if err != nil {
		return err
	}
	st.After["previous_active"] = "rotated"
	st.After["previous_active_last_vault_rotation"] = formatTime(role.lastRotation)
	st.After["previous_active_old_login_checked"] = strconv.FormatBool(checked)
	return nil
}
