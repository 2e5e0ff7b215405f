package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// connectTimeout bounds one login attempt to the database.
const connectTimeout = 10 * time.Second

// Placeholders that stand in for Vault's templates while the connection URL is parsed; the
// real user and password are set on the parsed configuration, never spliced into text.
const (
	placeholderUser     = "rotation_agent_user"
	placeholderPassword = "rotation_agent_password"
)

var (
	// errLoginRefused marks the database refusing a login (wrong password, unknown role).
	errLoginRefused = errors.New("login refused by the database")
	// errUnreachable marks a login attempt that did not get an answer from the database.
	errUnreachable = errors.New("database not reachable")
)

// target is where and how the agent logs in to a connection's database, learned from the
// connection URL in Vault with the credential's verify_host / verify_port overrides.
type target struct {
	connString string
	host       string
	port       uint16
}

// String names the target for messages, without credentials.
func (tg *target) String() string {
	cfg, err := pgx.ParseConfig(tg.connString)
	if err != nil {
		return "the database"
	}
	tg.override(cfg)
	return fmt.Sprintf("database %q at %s:%d", cfg.Database, cfg.Host, cfg.Port)
}

// newTarget builds the login target of a connection. Only PostgreSQL connections are
// supported: other plugins cannot be logged in to by this agent.
func newTarget(ref events.CredentialRef, c connConfig) (*target, error) {
	if c.pluginName != postgresPlugin {
		return nil, rotators.Permanent(fmt.Errorf("%s: connection %q uses plugin %q; the agent can log in to %s databases only",
			ref.ID(), c.name, c.pluginName, postgresPlugin))
	}
	if c.connectionURL == "" {
		return nil, rotators.Permanent(fmt.Errorf("%s: connection %q has no connection_url", ref.ID(), c.name))
	}
	cs := strings.NewReplacer("{{username}}", placeholderUser, "{{password}}", placeholderPassword).Replace(c.connectionURL)
	tg := &target{connString: cs, host: ref.Options[OptionVerifyHost]}
	if p := ref.Options[OptionVerifyPort]; p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, rotators.Permanent(fmt.Errorf("%s: option %s=%q is not a port number", ref.ID(), OptionVerifyPort, p))
		}
		tg.port = uint16(n)
	}
	if _, err := pgx.ParseConfig(cs); err != nil {
		return nil, rotators.Permanent(fmt.Errorf("%s: connection_url of %q cannot be parsed: %w", ref.ID(), c.name, err))
	}
	return tg, nil
}

// override applies the verify_host / verify_port options to cfg and its fallbacks (the
// plain-text fallback of sslmode=prefer, other hosts of a multi-host URL).
func (tg *target) override(cfg *pgx.ConnConfig) {
	set := func(c *pgconn.Config) {
		if tg.host != "" {
			c.Host = tg.host
		}
		if tg.port != 0 {
			c.Port = tg.port
		}
	}
	set(&cfg.Config)
	for _, fb := range cfg.Fallbacks {
		if tg.host != "" {
			fb.Host = tg.host
		}
		if tg.port != 0 {
			fb.Port = tg.port
		}
	}
}

// loginFunc logs in to a target; the rotators use pgLogin, unit tests a fake.
type loginFunc func(ctx context.Context, tg *target, user, password string) error

// pgLogin logs in to tg as user with password and runs a query. It returns nil when the
// database accepts the password, an error wrapping errLoginRefused when it refuses it, and one
// wrapping errUnreachable otherwise. No error carries the password or the driver's own error.
func pgLogin(ctx context.Context, tg *target, user, password string) error {
	cfg, err := pgx.ParseConfig(tg.connString)
	if err != nil {
		return fmt.Errorf("%w: connection_url cannot be parsed", errUnreachable)
	}
	tg.override(cfg)
	cfg.User, cfg.Password = user, password
	cfg.ConnectTimeout = connectTimeout
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "rotation-agent-verify"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return loginError(err, user, password)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return loginError(err, user, password)
	}
	return nil
}

// loginError describes a failed login without the password.
func loginError(err error, user, password string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
		return fmt.Errorf("%w: user %q: SQLSTATE %s", errLoginRefused, user, pgErr.Code)
	}
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "[redacted]")
	}
	return fmt.Errorf("%w: user %q: %s", errUnreachable, user, msg)
}
