package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Notes a static role rotation keeps in its state; none holds a secret.
const (
	// noteRole is the static role rotated: the credential's role, or the inactive one of a pair.
	noteRole = "role"
	// noteBaseLVR is the role's last_vault_rotation when the round was prepared.
	noteBaseLVR = "base_last_vault_rotation"
	// noteRotatingAt records the agent's intent to call rotate-role, saved before the call.
	noteRotatingAt = "rotating_at"
	// noteNewLVR is the role's last_vault_rotation after the agent's rotation.
	noteNewLVR = "new_last_vault_rotation"
	// noteActiveBefore, noteMarkerVersion and noteActiveBaseLVR describe a pair as prepared:
	// the role the marker named, the marker's version, and that role's last_vault_rotation.
	noteActiveBefore  = "active_before"
	noteMarkerVersion = "marker_version"
	noteActiveBaseLVR = "active_base_last_vault_rotation"
	// noteRetireRotatingAt records the intent to rotate the previously active role at retire.
	noteRetireRotatingAt = "retire_rotating_at"
)

// StaticRoleRotator rotates the password of a database static role through Vault
// (<mount>/rotate-role/<name>) and proves the result by logging in to the database with the
// new password and checking the old one is refused. With the pair and active_marker options
// it rotates the inactive role of a blue/green pair and then switches the marker to it, so
// consumers that follow the marker always get a password that works.
//
// Idempotence rests on Vault's last_vault_rotation: it is recorded at prepare, and any later
// value means the rotation happened, so a resumed apply never rotates twice.
type StaticRoleRotator struct {
	client *vault.Client
	vr     vaultReader
	mem    *memory
	login  loginFunc
}

var _ rotators.Rotator = (*StaticRoleRotator)(nil)

// NewStaticRole returns a static role rotator using client, whose retries should be off: the
// agent owns retries.
func NewStaticRole(client *vault.Client) *StaticRoleRotator {
	return &StaticRoleRotator{client: client, vr: vaultReader{client}, mem: newMemory(), login: pgLogin}
}

// Kind returns "database-static-role".
func (r *StaticRoleRotator) Kind() string { return KindStaticRole }

// Plan reads the role, its connection and the marker of a pair, and reports what a rotation
// would do.
func (r *StaticRoleRotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	ref := req.Credential
	o, err := staticOpts(ref)
	if err != nil {
		return rotators.Plan{}, err
	}
	name := ref.Path
	cur := events.Fingerprint{}
	var m marker
	if o.paired() {
		if m, err = r.readMarker(ctx, ref, o); err != nil {
			return rotators.Plan{}, err
		}
		if name, err = inactiveOf(ref, o, m.active); err != nil {
			return rotators.Plan{}, err
		}
		cur["active_role"], cur["marker_version"] = m.active, strconv.Itoa(m.version)
	}
	role, err := r.vr.staticRole(ctx, ref, name)
	if err != nil {
		return rotators.Plan{}, err
	}
	tg, err := r.targetOf(ctx, ref, role)
	if err != nil {
		return rotators.Plan{}, err
	}
	cur["role"], cur["username"], cur["db_name"] = name, role.username, role.dbName
	cur["last_vault_rotation"] = formatTime(role.lastRotation)
	changes := []string{
		fmt.Sprintf("rotate the password of static role %q (database user %q on connection %q) with %s/rotate-role/%s; Vault generates the password",
			name, role.username, role.dbName, mountOf(ref), name),
		fmt.Sprintf("log in to %s as %q with the new password, and check the old password is refused", tg, role.username),
	}
	if o.paired() {
		changes = append(changes, fmt.Sprintf("switch field %q of %s/%s from %q to %q (check-and-set on version %d)",
			MarkerField, o.markerMount, o.markerPath, m.active, name, m.version))
		if o.retire == "keep" {
			changes = append(changes, fmt.Sprintf("after the overlap window: keep the password of %q as it is", m.active))
		} else {
			changes = append(changes, fmt.Sprintf("after the overlap window: rotate %q too, so the password consumers held before stops working", m.active))
		}
	} else {
		changes = append(changes, "after the overlap window: check again that the old password is refused")
	}
	return rotators.Plan{Action: events.ActionRotate, Current: cur, Changes: changes}, nil
}

// Prepare records which role to rotate and its last_vault_rotation, checks the agent can
// reach its database, and keeps the current password in memory to prove later that it died.
func (r *StaticRoleRotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	o, err := staticOpts(ref)
	if err != nil {
		return err
	}
	name := ref.Path
	before := events.Fingerprint{}
	if o.paired() {
		m, err := r.readMarker(ctx, ref, o)
		if err != nil {
			return err
		}
		if name, err = inactiveOf(ref, o, m.active); err != nil {
			return err
		}
		active, err := r.vr.staticRole(ctx, ref, m.active)
		if err != nil {
			return err
		}
		_, activePassword, err := r.vr.staticPassword(ctx, ref, m.active)
		if err != nil {
			return err
		}
		r.mem.remember(memKey(req, m.active), activePassword)
		st.SetNote(noteActiveBefore, m.active)
		st.SetNote(noteMarkerVersion, strconv.Itoa(m.version))
		st.SetNote(noteActiveBaseLVR, formatTime(active.lastRotation))
		before["active_role"], before["marker_version"] = m.active, strconv.Itoa(m.version)
		before["active_last_vault_rotation"] = formatTime(active.lastRotation)
	}
	role, err := r.vr.staticRole(ctx, ref, name)
	if err != nil {
		return err
	}
	if _, err := r.targetOf(ctx, ref, role); err != nil {
		return err
	}
	_, oldPassword, err := r.vr.staticPassword(ctx, ref, name)
	if err != nil {
		return err
	}
	r.mem.remember(memKey(req, name), oldPassword)
	st.SetNote(noteRole, name)
	st.SetNote(noteBaseLVR, formatTime(role.lastRotation))
	if st.Before == nil { // a fresh round keeps the fingerprint of the original credential
		before["role"], before["username"], before["db_name"] = name, role.username, role.dbName
		before["last_vault_rotation"] = formatTime(role.lastRotation)
		st.Before = before
	}
	return nil
}

// Apply asks Vault to rotate the role, unless its last_vault_rotation shows a rotation since
// prepare: then that rotation is adopted instead of rotating twice.
func (r *StaticRoleRotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	if st.Note(noteNewLVR) != "" {
		return nil
	}
	name := st.Note(noteRole)
	if name == "" {
		return rotators.Permanent(fmt.Errorf("state of %s names no role: prepare did not run", ref.ID()))
	}
	role, err := r.rotateOnce(ctx, req, st, name, noteBaseLVR, noteRotatingAt)
	if err != nil {
		return err
	}
	by := "agent"
	if st.Note(noteRotatingAt) == "" {
		by = "vault" // rotated by Vault's own schedule (or an operator) after prepare
	}
	st.SetNote(noteNewLVR, formatTime(role.lastRotation))
	st.After = rotators.Fingerprint("role", name, "username", role.username,
		"last_vault_rotation", formatTime(role.lastRotation), "rotated_by", by)
	return nil
}

// rotateOnce rotates a role unless its last_vault_rotation already moved past the note
// baseNote, recording intentNote and saving the state before calling Vault.
func (r *StaticRoleRotator) rotateOnce(ctx context.Context, req rotators.Request, st *rotators.State, name, baseNote, intentNote string) (staticRole, error) {
	ref := req.Credential
	role, err := r.vr.staticRole(ctx, ref, name)
	if err != nil {
		return staticRole{}, err
	}
	if advanced(role.lastRotation, st.Note(baseNote)) {
		return role, nil
	}
	st.SetNote(intentNote, req.Now().UTC().Format(time.RFC3339Nano))
	if err := req.Save(ctx, st); err != nil {
		return staticRole{}, rotators.Retryable(err)
	}
	if _, err := r.client.Logical().WriteWithContext(ctx, mountOf(ref)+"/rotate-role/"+name, nil); err != nil {
		// Whatever happened, the next attempt reads last_vault_rotation first.
		return staticRole{}, classify("rotate static role "+name, ref, err)
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	if role, err = r.vr.staticRole(ctx, ref, name); err != nil {
		return staticRole{}, err
	}
	if !advanced(role.lastRotation, st.Note(baseNote)) {
		return staticRole{}, rotators.Retryable(fmt.Errorf("%w: Vault accepted the rotation of static role %q but its last_vault_rotation did not advance", errVerify, name))
	}
	return role, nil
}

// Verify checks last_vault_rotation advanced, logs in to the database with the password
// Vault now hands out, and checks every password this rotation replaced is refused. Old
// passwords are known only to the process that prepared the rotation; after a restart the
// fingerprint says old_login_checked=false.
func (r *StaticRoleRotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	name := st.Note(noteRole)
	role, err := r.vr.staticRole(ctx, ref, name)
	if err != nil {
		return err
	}
	if !advanced(role.lastRotation, st.Note(noteBaseLVR)) {
		return rotators.Retryable(fmt.Errorf("%w: last_vault_rotation of static role %q is %s, not after %s",
			errVerify, name, formatTime(role.lastRotation), st.Note(noteBaseLVR)))
	}
	checked, err := r.proveRotated(ctx, req, role)
	if err != nil {
		return err
	}
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	st.After["last_vault_rotation"] = formatTime(role.lastRotation)
	st.After["new_login_checked"] = "true"
	st.After["old_login_checked"] = strconv.FormatBool(checked)
	return nil
}

// proveRotated logs in with the role's current password and checks the replaced ones known to
// this process are refused; it reports whether any old password was checked.
func (r *StaticRoleRotator) proveRotated(ctx context.Context, req rotators.Request, role staticRole) (bool, error) {
	ref := req.Credential
	tg, err := r.targetOf(ctx, ref, role)
	if err != nil {
		return false, err
	}
	user, password, err := r.vr.staticPassword(ctx, ref, role.name)
	if err != nil {
		return false, err
	}
	if err := r.login(ctx, tg, user, password); err != nil {
		return false, rotators.Retryable(fmt.Errorf("%w: the new password of static role %q does not log in to %s: %w", errVerify, role.name, tg, err))
	}
	olds := r.mem.passwords(memKey(req, role.name))
	for _, old := range olds {
		if old == password {
			return false, rotators.Retryable(fmt.Errorf("%w: static role %q still has a password it had before the rotation", errVerify, role.name))
		}
		err := r.login(ctx, tg, user, old)
		switch {
		case err == nil:
			return false, rotators.Retryable(fmt.Errorf("%w: an old password of static role %q still logs in to %s", errVerify, role.name, tg))
		case !errors.Is(err, errLoginRefused):
			return false, rotators.Retryable(fmt.Errorf("could not check that the old password of static role %q is refused: %w", role.name, err))
		}
	}
	return len(olds) > 0, nil
}

// Promote switches the marker of a pair to the rotated role; a single role has nothing to
// promote (Vault hands out the new password as soon as it is rotated).
func (r *StaticRoleRotator) Promote(ctx context.Context, req rotators.Request, st *rotators.State) error {
	o, err := staticOpts(req.Credential)
	if err != nil || !o.paired() {
		return err
	}
	return r.flipMarker(ctx, req, st, o)
}

// Retire checks again, for a single role, that the old password is refused. For a pair it
// rotates the previously active role (unless retire=keep), whose password consumers held
// before the switch, once the marker still names the new role.
func (r *StaticRoleRotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	o, err := staticOpts(ref)
	if err != nil {
		return err
	}
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	name := st.Note(noteRole)
	if !o.paired() {
		role, err := r.vr.staticRole(ctx, ref, name)
		if err != nil {
			return err
		}
		checked, err := r.proveRotated(ctx, req, role)
		if err != nil {
			return err
		}
		st.After["old_login_checked"] = strconv.FormatBool(checked)
		r.mem.forget(memKey(req, name))
		return nil
	}
	if err := r.retirePair(ctx, req, st, o); err != nil {
		return err
	}
	r.mem.forget(memKey(req, name))
	r.mem.forget(memKey(req, st.Note(noteActiveBefore)))
	return nil
}

// targetOf learns how to reach a role's database from its connection in Vault.
func (r *StaticRoleRotator) targetOf(ctx context.Context, ref events.CredentialRef, role staticRole) (*target, error) {
	cfg, err := r.vr.config(ctx, ref, role.dbName)
	if err != nil {
		return nil, err
	}
	return newTarget(ref, cfg)
}
