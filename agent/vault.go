package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

// vaultSession is an authenticated Vault client that keeps its token alive: it renews the token
// with a LifetimeWatcher and logs in again when renewal ends.
type vaultSession struct {
	client *vault.Client
	// loginClient carries no token; logins use it so the shared client always has a token.
	loginClient *vault.Client
	// healthClient carries neither token nor namespace: sys/health lives in the root namespace.
	healthClient *vault.Client
	cfg          VaultConfig
	log          logrus.FieldLogger
	redactor     *Redactor
	// appRole remembers what the AppRole secret id file held (see vault_approle.go).
	appRole appRoleFile
	healthy atomic.Bool
}

// newVaultClient builds a Vault client for cfg with the client's own retries off: rotations are
// not idempotent, so the agent reads state back and retries from its journal instead.
func newVaultClient(cfg VaultConfig) (*vault.Client, error) {
	// DefaultConfig also reads VAULT_* variables by itself. Every setting that matters is set
	// here from cfg instead, so what `config check` prints is what the client uses; in
	// particular TLS is configured afresh, so VAULT_SKIP_VERIFY cannot turn verification off.
	conf := vault.DefaultConfig()
	conf.Error = nil
	conf.Address = cfg.Addr
	conf.MaxRetries = 0
	conf.Timeout = cfg.Timeout
	if err := conf.ConfigureTLS(&vault.TLSConfig{CACert: cfg.CACert, TLSServerName: cfg.TLSServerName}); err != nil {
		return nil, fmt.Errorf("vault TLS: %w", err)
	}
	if tlsConf := conf.TLSConfig(); tlsConf != nil {
		tlsConf.InsecureSkipVerify = false
	}
	// Wrapped last: the client's TLS set-up above needs the plain *http.Transport.
	conf.HttpClient.Transport = newRetryAfterTransport(conf.HttpClient.Transport)
	client, err := vault.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	client.ClearToken() // NewClient reads VAULT_TOKEN itself; the configured method decides.
	client.ClearNamespace()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	return client, nil
}

// openVault connects and logs in once. Its error is the start-up error the user sees.
func openVault(ctx context.Context, cfg VaultConfig, log logrus.FieldLogger, redactor *Redactor) (*vaultSession, *vault.Secret, error) {
	client, err := newVaultClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	loginClient, err := newVaultClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	rootCfg := cfg
	rootCfg.Namespace = ""
	healthClient, err := newVaultClient(rootCfg)
	if err != nil {
		return nil, nil, err
	}
	s := &vaultSession{client: client, loginClient: loginClient, healthClient: healthClient, cfg: cfg, log: log, redactor: redactor}
	secret, err := s.login(ctx)
	if err != nil {
		return nil, nil, singleLine(fmt.Errorf("vault at %s: %w", cfg.Addr, err))
	}
	s.healthy.Store(true)
	return s, secret, nil
}

// login authenticates with the configured method and sets the client's token. It returns the
// auth secret, whose lease the renewer watches.
func (s *vaultSession) login(ctx context.Context) (*vault.Secret, error) {
	switch s.cfg.AuthMethod {
	case AuthToken:
		token := s.cfg.Token
		if s.cfg.TokenFile != "" {
			raw, err := os.ReadFile(s.cfg.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("read token file: %w", err)
			}
			token = strings.TrimSpace(string(raw))
		}
		s.redactor.Add(token)
		s.client.SetToken(token)
		self, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("token lookup: %w", err)
		}
		// Shape lookup-self data as an auth secret so renewal treats all methods alike.
		ttl, _ := self.TokenTTL()
		renewable, _ := self.TokenIsRenewable()
		return &vault.Secret{Auth: &vault.SecretAuth{ClientToken: token, LeaseDuration: int(ttl.Seconds()), Renewable: renewable}}, nil
	case AuthAppRole:
		return s.appRoleLogin(ctx)
	case AuthKubernetes:
		raw, err := os.ReadFile(s.cfg.KubernetesTokenFile)
		if err != nil {
			return nil, fmt.Errorf("read service account token: %w", err)
		}
		// Kubernetes rotates projected tokens, so every login adds the one it read.
		jwt := strings.TrimSpace(string(raw))
		s.redactor.Add(jwt)
		return s.write(ctx, "auth/"+s.cfg.KubernetesMount+"/login", map[string]any{"role": s.cfg.KubernetesRole, "jwt": jwt})
	}
	return nil, fmt.Errorf("unknown auth method %q", s.cfg.AuthMethod)
}

// write performs a login write without a token and adopts the token it returns.
func (s *vaultSession) write(ctx context.Context, path string, body map[string]any) (*vault.Secret, error) {
	secret, err := s.loginClient.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return nil, fmt.Errorf("login at %s: %w", path, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, fmt.Errorf("login at %s: no token in the response", path)
	}
	s.redactor.Add(secret.Auth.ClientToken)
	s.client.SetToken(secret.Auth.ClientToken)
	return secret, nil
}

// keepAlive renews the token while it can and logs in again when renewal ends, until ctx ends.
// A failed login is retried with backoff and marks the session unhealthy meanwhile.
func (s *vaultSession) keepAlive(ctx context.Context, secret *vault.Secret) {
	bo := newBackoff(time.Second, time.Minute)
	for ctx.Err() == nil {
		err := s.watch(ctx, secret)
		if ctx.Err() != nil {
			return
		}
		s.log.WithError(err).Info("vault token renewal ended; logging in again")
		for attempt := 1; ctx.Err() == nil; attempt++ {
			secret, err = s.login(ctx)
			if err == nil {
				s.healthy.Store(true)
				s.log.Info("vault login renewed")
				break
			}
			s.healthy.Store(false)
			s.log.WithError(err).WithField("attempt", attempt).Warn("vault login failed")
			if !sleepCtx(ctx, bo.delay(attempt)) {
				return
			}
		}
	}
}

// watch renews secret's token until renewal is no longer possible. A token that is not
// renewable is used until shortly before it expires; one that never expires is kept forever.
func (s *vaultSession) watch(ctx context.Context, secret *vault.Secret) error {
	if secret == nil || secret.Auth == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	if !secret.Auth.Renewable {
		if ttl == 0 {
			<-ctx.Done()
			return ctx.Err()
		}
		sleepCtx(ctx, ttl*8/10)
		return errors.New("token is not renewable and nears its expiry")
	}
	watcher, err := s.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return err
	}
	go watcher.Start()
	defer watcher.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-watcher.DoneCh():
			if err == nil {
				err = errors.New("token reached its maximum TTL")
			}
			return err
		case r := <-watcher.RenewCh():
			s.log.WithField("ttl_seconds", r.Secret.Auth.LeaseDuration).Debug("vault token renewed")
		}
	}
}
