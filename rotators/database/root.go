package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Notes a root rotation keeps in its state; none holds a secret.
const (
	// noteRootRotatingAt records the intent to call rotate-root, saved before each call.
	noteRootRotatingAt = "rotating_at"
	// noteRootCalls counts the rotate-root calls the agent made for this rotation.
	noteRootCalls = "rotate_root_calls"
	// noteRootRotatedAt records that a rotate-root call succeeded.
	noteRootRotatedAt = "rotated_at"
	// noteUncertain records that an earlier call's outcome was unknown when the agent called
	// again.
	noteUncertain = "uncertain_apply"
	// noteVerifyLease is the lease of the verification credentials, revoked by verify; kept so
	// an interrupted verify revokes it on the next attempt.
	noteVerifyLease = "verify_lease"
)

// RootRotator rotates the root credential Vault holds for a database connection
// (<mount>/rotate-root/<name>) and proves Vault can still use it: the connection is reloaded
// with verification (<mount>/reset/<name> with verify_connection=true) and, with the
// verify_role option, credentials of that dynamic role are created through the root
// connection, used to log in to the database, and revoked.
//
// Vault keeps no counter or timestamp of root rotations and never returns the root password,
// so a call whose outcome was lost (a crash between the saved intent and the recorded result)
// cannot be recognised afterwards. The agent then checks that Vault's root connection works
// and rotates again: a second root rotation reaches the same end state (a fresh password
// only Vault knows), nothing outside Vault holds the intermediate password, and the
// fingerprint reports uncertain_apply=true and rotate_root_calls=2. An outcome that was
// recorded is never repeated.
type RootRotator struct {
	client *vault.Client
	vr     vaultReader
	login  loginFunc
}

var _ rotators.Rotator = (*RootRotator)(nil)

// NewRoot returns a root credential rotator using client, whose retries should be off: the
// agent owns retries.
func NewRoot(client *vault.Client) *RootRotator {
	return &RootRotator{client: client, vr: vaultReader{client}, login: pgLogin}
}

// Kind returns "database-root".
func (r *RootRotator) Kind() string { return KindRoot }

// check reads the connection and makes sure a new root credential can be proven: Vault
// verifies the connection on reset, or a verify_role of this connection is named.
func (r *RootRotator) check(ctx context.Context, ref events.CredentialRef) (connConfig, *target, error) {
	if err := checkRotate(ref); err != nil {
		return connConfig{}, nil, err
	}
	cfg, err := r.vr.config(ctx, ref, ref.Path)
	if err != nil {
		return connConfig{}, nil, err
	}
	if cfg.username == "" {
		return connConfig{}, nil, rotators.Permanent(fmt.Errorf("%s: connection has no root username", ref.ID()))
	}
	role := ref.Options[OptionVerifyRole]
	if role == "" {
		if !cfg.verifyConnection {
			return connConfig{}, nil, rotators.Permanent(fmt.Errorf("%s: the connection has verify_connection=false and no %s option names a dynamic role: a new root credential could not be proven, so it is not rotated",
				ref.ID(), OptionVerifyRole))
		}
		return cfg, nil, nil
	}
	db, err := r.vr.dynamicRoleDB(ctx, ref, role)
	if err != nil {
		return connConfig{}, nil, err
	}
	if db != ref.Path {
		return connConfig{}, nil, rotators.Permanent(fmt.Errorf("%s: option %s=%q names a role of connection %q, not %q", ref.ID(), OptionVerifyRole, role, db, ref.Path))
	}
	tg, err := newTarget(ref, cfg)
	if err != nil {
		return connConfig{}, nil, err
	}
	return cfg, tg, nil
}

// Plan reads the connection and reports what a root rotation would do.
func (r *RootRotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	ref := req.Credential
	cfg, tg, err := r.check(ctx, ref)
	if err != nil {
		return rotators.Plan{}, err
	}
	changes := []string{
		fmt.Sprintf("rotate the root password of connection %q (database user %q) with %s/rotate-root/%s; Vault generates it and never reveals it",
			ref.Path, cfg.username, mountOf(ref), ref.Path),
	}
	if cfg.verifyConnection {
		changes = append(changes, fmt.Sprintf("reload the connection with %s/reset/%s, which makes Vault log in with the new root password", mountOf(ref), ref.Path))
	}
	if tg != nil {
		changes = append(changes, fmt.Sprintf("create credentials of role %q through the new root connection, log in to %s with them, then revoke them",
			ref.Options[OptionVerifyRole], tg))
	}
	return rotators.Plan{
		Action:  events.ActionRotate,
		Current: rotators.Fingerprint("connection", ref.Path, "username", cfg.username, "plugin_name", cfg.pluginName, "verify_connection", strconv.FormatBool(cfg.verifyConnection)),
		Changes: changes,
	}, nil
}

// Prepare checks the rotation can be proven and fingerprints the connection.
func (r *RootRotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	cfg, _, err := r.check(ctx, ref)
	if err != nil {
		return err
	}
	if st.Before == nil {
		st.Before = rotators.Fingerprint("connection", ref.Path, "username", cfg.username, "plugin_name", cfg.pluginName,
			"verify_connection", strconv.FormatBool(cfg.verifyConnection))
	}
	return nil
}

// Apply calls rotate-root once. A recorded success is never repeated; an earlier call whose
// outcome is unknown is followed by a check that Vault's connection works and another call
// (see RootRotator).
func (r *RootRotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	if st.Note(noteRootRotatedAt) != "" {
		return nil
	}
	calls, _ := strconv.Atoi(st.Note(noteRootCalls))
	if st.Note(noteRootRotatingAt) != "" {
		if err := r.reset(ctx, ref); err != nil {
			return rotators.Retryable(fmt.Errorf("an earlier root rotation of %s was interrupted and Vault's root connection does not work now: %w", ref.ID(), err))
		}
		st.SetNote(noteUncertain, "true")
	}
	now := req.Now().UTC().Format(time.RFC3339Nano)
	st.SetNote(noteRootRotatingAt, now)
	st.SetNote(noteRootCalls, strconv.Itoa(calls+1))
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(err)
	}
	if _, err := r.client.Logical().WriteWithContext(ctx, mountOf(ref)+"/rotate-root/"+ref.Path, nil); err != nil {
		return classify("rotate root credential", ref, err)
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	st.SetNote(noteRootRotatedAt, req.Now().UTC().Format(time.RFC3339Nano))
	uncertain := st.Note(noteUncertain) == "true"
	st.After = rotators.Fingerprint("connection", ref.Path, "username", st.Before["username"],
		"rotated_at", st.Note(noteRootRotatedAt), "rotate_root_calls", st.Note(noteRootCalls),
		"uncertain_apply", strconv.FormatBool(uncertain))
	// Record the outcome at once: after this save a resumed run never rotates again.
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("record the root rotation of %s: %w", ref.ID(), err))
	}
	return nil
}

// reset reloads Vault's connection; with verify_connection=true Vault logs in to the database
// with the root credential it holds.
func (r *RootRotator) reset(ctx context.Context, ref events.CredentialRef) error {
	if _, err := r.client.Logical().WriteWithContext(ctx, mountOf(ref)+"/reset/"+ref.Path, nil); err != nil {
		return classify("reset connection", ref, err)
	}
	return nil
}

// Verify proves Vault's root connection works with the new password: a verified reload of
// the connection, and with verify_role a login to the database with credentials created
// through it, which are revoked afterwards (and checked to be refused).
func (r *RootRotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	cfg, tg, err := r.check(ctx, ref)
	if err != nil {
		return err
	}
	if lease := st.Note(noteVerifyLease); lease != "" {
		if err := r.revoke(ctx, ref, lease); err != nil {
			return err
		}
		delete(st.Data, noteVerifyLease)
	}
	var methods []string
	if err := r.reset(ctx, ref); err != nil {
		if cfg.verifyConnection && !isClientError(err) {
			return rotators.Retryable(fmt.Errorf("%w: Vault cannot connect to the database with the new root credential of %s: %w", errVerify, ref.ID(), err))
		}
		return err
	}
	if cfg.verifyConnection {
		methods = append(methods, "verified_reset")
	}
	if tg != nil {
		if err := r.verifyWithRole(ctx, req, st, tg); err != nil {
			return err
		}
		methods = append(methods, "dynamic_credentials_login")
	}
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	st.After["verified_by"] = strings.Join(methods, "+")
	return nil
}

// verifyWithRole creates credentials of the verify role, logs in with them, revokes them and
// checks they are refused afterwards.
func (r *RootRotator) verifyWithRole(ctx context.Context, req rotators.Request, st *rotators.State, tg *target) error {
	ref := req.Credential
	role := ref.Options[OptionVerifyRole]
	sec, err := r.client.Logical().ReadWithContext(ctx, mountOf(ref)+"/creds/"+role)
	if err != nil {
		if rotators.IsRetryable(err) {
			return rotators.Retryable(fmt.Errorf("%w: Vault could not create credentials of role %q through the new root connection of %s: %w", errVerify, role, ref.ID(), err))
		}
		return classify("create credentials of role "+role, ref, err)
	}
	if sec == nil || sec.Data == nil || sec.LeaseID == "" {
		return rotators.Permanent(fmt.Errorf("%s: role %q returned no credentials with a lease", ref.ID(), role))
	}
	st.SetNote(noteVerifyLease, sec.LeaseID)
	if err := req.Save(ctx, st); err != nil {
		// The lease expires by itself; revoke it now rather than leave it to its TTL.
		return errors.Join(rotators.Retryable(err), r.revoke(ctx, ref, sec.LeaseID))
	}
	user, password := str(sec.Data["username"]), str(sec.Data["password"])
	loginErr := r.login(ctx, tg, user, password)
	if err := r.revoke(ctx, ref, sec.LeaseID); err != nil {
		return err
	}
	delete(st.Data, noteVerifyLease)
	if loginErr != nil {
		return rotators.Retryable(fmt.Errorf("%w: credentials of role %q created through the new root connection of %s do not log in: %w", errVerify, role, ref.ID(), loginErr))
	}
	switch err := r.login(ctx, tg, user, password); {
	case err == nil:
		return rotators.Retryable(fmt.Errorf("%w: revoked credentials of role %q still log in to %s", errVerify, role, tg))
	case !errors.Is(err, errLoginRefused):
		return rotators.Retryable(fmt.Errorf("could not check that revoked credentials of role %q are refused: %w", role, err))
	}
	return nil
}

// revoke revokes a lease through the path form, so a policy can limit it to the mount's
// credentials. A lease Vault no longer knows counts as revoked.
func (r *RootRotator) revoke(ctx context.Context, ref events.CredentialRef, lease string) error {
	if _, err := r.client.Logical().WriteWithContext(ctx, "sys/leases/revoke/"+lease, nil); err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == 400 && strings.Contains(strings.ToLower(strings.Join(re.Errors, " ")), "invalid lease") {
			return nil
		}
		return classify("revoke verification lease", ref, err)
	}
	return nil
}

// Promote has nothing to do: Vault uses the new root credential as soon as it is rotated.
func (r *RootRotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }

// Retire has nothing left to remove: rotate-root replaced the old password in the database
// itself. Vault never reveals the root password, so no login with the old one can be tried;
// the fingerprint says so.
func (r *RootRotator) Retire(_ context.Context, _ rotators.Request, st *rotators.State) error {
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	st.After["old_login_checked"] = "false"
	st.After["old_credential"] = "replaced_in_database_by_rotate_root"
	return nil
}

// isClientError reports a Vault answer that retrying cannot change (4xx but 429).
func isClientError(err error) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != 429
}
