package entitlements

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
)

// probeTTL bounds the life of every credential a probe mints, should revoking it fail.
const probeTTL = "60s"

// probeCleanupTimeout bounds the clean-up of a probe, which runs even when the check's context
// has ended.
const probeCleanupTimeout = 30 * time.Second

// SecretSink learns the secret values a probe handles while they exist, so that the agent's
// log redaction removes them; the agent's Redactor is one.
type SecretSink interface {
	// Add starts removing value.
	Add(value string)
	// Forget stops removing value.
	Forget(value string)
}

// probeLogin is one short-lived login as a role, and what must be undone afterwards.
type probeLogin struct {
	c  *Checker
	id Identity
	// token and accessor are the login's token; empty until the login succeeded.
	token, accessor string
	// secretIDAccessor is the AppRole secret id minted for the login; empty for a token role.
	secretIDAccessor string
	secrets          []string
}

// probeCapabilities measures the effective capabilities of an AppRole role or token role on
// paths, exactly as Vault evaluates them: it mints a single-use credential for the role, logs
// in, asks sys/capabilities-self with that token, and then revokes the token and destroys the
// secret id, also when a step failed. The returned note describes a clean-up that did not
// succeed; err says why the capabilities could not be measured.
func (c *Checker) probeCapabilities(ctx context.Context, id Identity, paths []string) (caps map[string][]string, note string, err error) {
	p := &probeLogin{c: c, id: id}
	defer func() { note = p.release(ctx) }()
	if err := p.login(ctx); err != nil {
		return nil, "", err
	}
	caps, err = p.capabilities(ctx, paths)
	return caps, "", err
}

// remember hands a secret value to the redaction sink, to be forgotten at release.
func (p *probeLogin) remember(value string) {
	if value == "" || p.c.Secrets == nil {
		return
	}
	p.c.Secrets.Add(value)
	p.secrets = append(p.secrets, value)
}

// login mints the credential and logs in with it.
func (p *probeLogin) login(ctx context.Context) error {
	logical := p.c.Client.Logical()
	if p.id.Kind == KindTokenRole {
		sec, err := logical.WriteWithContext(ctx, "auth/token/create/"+p.id.Name, map[string]any{
			"ttl": probeTTL, "num_uses": 2, "renewable": false,
			"meta": map[string]string{"purpose": "rotation-agent capability probe"},
		})
		if err != nil {
			return fmt.Errorf("create a probe token with token role %s: %w", p.id.Name, err)
		}
		return p.takeAuth(sec)
	}
	rolePath := "auth/" + p.id.Mount + "/role/" + p.id.Name
	sec, err := logical.ReadWithContext(ctx, rolePath+"/role-id")
	if err != nil {
		return fmt.Errorf("read the role id of %s: %w", rolePath, err)
	}
	roleID := ""
	if sec != nil {
		roleID, _ = sec.Data["role_id"].(string)
	}
	if roleID == "" {
		return fmt.Errorf("read the role id of %s: none returned", rolePath)
	}
	sec, err = logical.WriteWithContext(ctx, rolePath+"/secret-id", map[string]any{
		"ttl": probeTTL, "num_uses": 1, "metadata": `{"purpose":"rotation-agent capability probe"}`,
	})
	if err != nil {
		return fmt.Errorf("create a probe secret id for %s: %w", rolePath, err)
	}
	var secretID string
	if sec != nil {
		secretID, _ = sec.Data["secret_id"].(string)
		p.secretIDAccessor, _ = sec.Data["secret_id_accessor"].(string)
	}
	p.remember(secretID)
	if secretID == "" || p.secretIDAccessor == "" {
		return fmt.Errorf("create a probe secret id for %s: no secret id or accessor returned", rolePath)
	}
	anon, err := vaultcall.ClientAs(p.c.Client, "")
	if err != nil {
		return err
	}
	sec, err = anon.Logical().WriteWithContext(ctx, "auth/"+p.id.Mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		return fmt.Errorf("probe login at auth/%s/login refused: %w", p.id.Mount, err)
	}
	return p.takeAuth(sec)
}

// takeAuth keeps the token of a login or token creation.
func (p *probeLogin) takeAuth(sec *vault.Secret) error {
	if sec != nil && sec.Auth != nil {
		p.token, p.accessor = sec.Auth.ClientToken, sec.Auth.Accessor
	}
	p.remember(p.token)
	if p.token == "" {
		return errors.New("probe login returned no token")
	}
	return nil
}

// capabilities asks Vault for the probe token's capabilities on paths: sys/capabilities-self
// with the token, or, when the token's policies do not allow that (a role without the default
// policy), sys/capabilities-accessor with its accessor.
func (p *probeLogin) capabilities(ctx context.Context, paths []string) (map[string][]string, error) {
	client, err := vaultcall.ClientAs(p.c.Client, p.token)
	if err != nil {
		return nil, err
	}
	sec, err := client.Logical().WriteWithContext(ctx, "sys/capabilities-self", map[string]any{"paths": paths})
	if err != nil && vaultcall.Status(err) == http.StatusForbidden && p.accessor != "" {
		sec, err = p.c.Client.Logical().WriteWithContext(ctx, "sys/capabilities-accessor", map[string]any{"accessor": p.accessor, "paths": paths})
	}
	if err != nil {
		return nil, fmt.Errorf("capabilities of the probe token: %w", err)
	}
	if sec == nil || sec.Data == nil {
		return nil, errors.New("capabilities of the probe token: empty response")
	}
	out := make(map[string][]string, len(paths))
	for _, path := range paths {
		caps := stringList(sec.Data[path])
		if caps == nil && len(paths) == 1 {
			caps = stringList(sec.Data["capabilities"])
		}
		if caps == nil {
			return nil, fmt.Errorf("capabilities of the probe token: none returned for %s", path)
		}
		out[path] = caps
	}
	return out, nil
}

// release revokes the probe token and destroys the probe secret id, on a context of its own so
// that it runs even when ctx has ended, and returns a note naming whatever is left behind.
func (p *probeLogin) release(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeCleanupTimeout)
	defer cancel()
	defer func() {
		for _, s := range p.secrets {
			p.c.Secrets.Forget(s)
		}
	}()
	var left []string
	if p.token != "" {
		if err := p.revokeToken(ctx); err != nil {
			left = append(left, fmt.Sprintf("the probe token (accessor %s) could not be revoked and expires with its TTL: %v", p.accessor, err))
		}
	}
	if p.secretIDAccessor != "" {
		if err := p.destroySecretID(ctx); err != nil {
			left = append(left, fmt.Sprintf("the probe secret id (accessor %s) could not be destroyed and expires within %s: %v", p.secretIDAccessor, probeTTL, err))
		}
	}
	return strings.Join(left, "; ")
}

// revokeToken revokes the probe token with itself, or by accessor when it may not revoke
// itself (or has used up its uses); a token Vault no longer knows is revoked.
func (p *probeLogin) revokeToken(ctx context.Context) error {
	if client, err := vaultcall.ClientAs(p.c.Client, p.token); err == nil {
		if _, err := client.Logical().WriteWithContext(ctx, "auth/token/revoke-self", nil); err == nil {
			return nil
		}
	}
	if p.accessor == "" {
		return errors.New("revoke-self failed and the token has no accessor")
	}
	logical := p.c.Client.Logical()
	_, err := logical.WriteWithContext(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": p.accessor})
	if err == nil {
		return nil
	}
	sec, lookupErr := logical.WriteWithContext(ctx, "auth/token/lookup-accessor", map[string]any{"accessor": p.accessor})
	if (lookupErr != nil && vaultcall.Status(lookupErr) == http.StatusBadRequest) || (lookupErr == nil && sec == nil) {
		return nil // Vault no longer knows the token (its last use revoked it).
	}
	return err
}

// destroySecretID destroys the probe secret id by accessor; one already gone (its single use
// spent on the login) is fine, which a listing of the role's accessors confirms.
func (p *probeLogin) destroySecretID(ctx context.Context) error {
	logical := p.c.Client.Logical()
	rolePath := "auth/" + p.id.Mount + "/role/" + p.id.Name
	_, err := logical.WriteWithContext(ctx, rolePath+"/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": p.secretIDAccessor})
	if err == nil {
		return nil
	}
	sec, listErr := logical.ListWithContext(ctx, rolePath+"/secret-id")
	if listErr != nil {
		return fmt.Errorf("%w (and listing the role's secret ids failed: %w)", err, listErr)
	}
	if sec == nil || !slices.Contains(stringList(sec.Data["keys"]), p.secretIDAccessor) {
		return nil
	}
	return err
}
