// Package postgres starts a real PostgreSQL server from the distribution's packages for
// integration tests: a fresh cluster in a temporary directory, a password-protected superuser,
// and a loopback TCP port, torn down when the test ends.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BinGlob is where the Debian and Ubuntu packages install the server binaries, one folder per
// major version.
const BinGlob = "/usr/lib/postgresql/*/bin"

// osUser is the operating system account the server runs as when the tests run as root:
// PostgreSQL refuses to run as root.
const osUser = "postgres"

// Server is a running PostgreSQL server started by Start.
type Server struct {
	// Host is the loopback address the server listens on.
	Host string
	// Port is the TCP port the server listens on.
	Port int
	// Superuser and Password are the bootstrap superuser's name and password.
	Superuser string
	Password  string
	// Database is the maintenance database that always exists.
	Database string
	// Dir holds the cluster's data, socket and log; it is removed when the test ends.
	Dir string

	bin     string
	dataDir string
	logFile string
	asRoot  bool
	started bool
}

// Start initialises a new cluster with password (md5/SCRAM) authentication and starts it on a
// free loopback port. It stops the server (immediate shutdown) and removes its files when the
// test ends. A machine without the PostgreSQL server package fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("postgres: %v", err)
		}
	})
	return s
}

// Launch is Start for programs that are not tests (the demo): the caller must call Stop.
func Launch() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, fmt.Errorf("%w (install the postgresql package)", err)
	}
	s := &Server{Host: "127.0.0.1", Superuser: "postgres", Database: "postgres", bin: bin, asRoot: os.Geteuid() == 0}
	if s.Password, err = randomHex(16); err != nil {
		return nil, err
	}
	if s.Dir, err = os.MkdirTemp("", "pg-harness-"); err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	if err := s.launch(); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	s.dataDir = filepath.Join(s.Dir, "data")
	s.logFile = filepath.Join(s.Dir, "server.log")
	sockDir := filepath.Join(s.Dir, "sock")
	pwFile := filepath.Join(s.Dir, "pwfile")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	if s.asRoot {
		if err := chownTree(s.Dir, osUser); err != nil {
			return err
		}
	}
	if out, err := s.run("initdb", "-D", s.dataDir, "-U", s.Superuser, "-A", "md5", "--pwfile", pwFile,
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	_ = os.Remove(pwFile)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=%s -c fsync=off -c full_page_writes=off", port, sockDir, s.Host)
		out, err := s.run("pg_ctl", "-D", s.dataDir, "-l", s.logFile, "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			s.Port, s.started = port, true
			lastErr = nil
			break
		}
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, s.serverLog())
		_, _ = s.run("pg_ctl", "-D", s.dataDir, "-m", "immediate", "-w", "stop")
	}
	if lastErr != nil {
		return lastErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CanLogin(ctx, s.Superuser, s.Password); err != nil {
		return fmt.Errorf("superuser cannot log in: %w\n%s", err, s.serverLog())
	}
	return nil
}

// Stop shuts the server down at once and removes its files.
func (s *Server) Stop() error {
	var err error
	if s.started {
		if out, stopErr := s.run("pg_ctl", "-D", s.dataDir, "-m", "immediate", "-w", "stop"); stopErr != nil {
			err = fmt.Errorf("pg_ctl stop: %w\n%s", stopErr, out)
		}
		s.started = false
	}
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
	return err
}

// VaultConnectionURL is the connection URL for Vault's database secrets engine, with the
// {{username}} and {{password}} templates Vault fills in itself.
func (s *Server) VaultConnectionURL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@%s:%d/%s?sslmode=disable", s.Host, s.Port, s.Database)
}

// config returns a pgx configuration logging in as user with password.
func (s *Server) config(user, password string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=disable connect_timeout=10", s.Host, s.Port, s.Database))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, password
	return cfg, nil
}

// Connect logs in as user with password; the caller closes the connection.
func (s *Server) Connect(ctx context.Context, user, password string) (*pgx.Conn, error) {
	cfg, err := s.config(user, password)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// CanLogin logs in as user with password and runs a query. It returns nil when that works and
// the server's error otherwise (see IsAuthFailure).
func (s *Server) CanLogin(ctx context.Context, user, password string) error {
	conn, err := s.Connect(ctx, user, password)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// IsAuthFailure reports whether err is the server refusing a login (wrong password, unknown
// role), as opposed to the server being unreachable.
func IsAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

// Exec runs sql as the superuser and fails the test on error.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := s.ExecContext(context.Background(), sql, args...); err != nil {
		t.Fatalf("postgres: exec %q: %v", sql, err)
	}
}

// ExecContext runs sql as the superuser.
func (s *Server) ExecContext(ctx context.Context, sql string, args ...any) error {
	conn, err := s.Connect(ctx, s.Superuser, s.Password)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// QueryString runs a query returning one text value as the superuser and fails the test on
// error; a NULL or missing row reads as "".
func (s *Server) QueryString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.Connect(ctx, s.Superuser, s.Password)
	if err != nil {
		t.Fatalf("postgres: connect: %v", err)
	}
	defer conn.Close(ctx)
	var v *string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ""
		}
		t.Fatalf("postgres: query %q: %v", sql, err)
	}
	if v == nil {
		return ""
	}
	return *v
}

// CreateLoginRole creates a role that can log in with password.
func (s *Server) CreateLoginRole(t testing.TB, name, password string, superuser bool) {
	t.Helper()
	stmt := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " WITH LOGIN PASSWORD " + quoteLiteral(password)
	if superuser {
		stmt += " SUPERUSER"
	}
	s.Exec(t, stmt)
}

// SetPassword changes a role's password directly in the database, behind Vault's back.
func (s *Server) SetPassword(t testing.TB, role, password string) {
	t.Helper()
	s.Exec(t, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" WITH PASSWORD "+quoteLiteral(password))
}

// PasswordHash returns the stored password verifier of role (superusers only can read it): it
// changes on every password change, so tests count rotations with it.
func (s *Server) PasswordHash(t testing.TB, role string) string {
	t.Helper()
	return s.QueryString(t, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// run runs one of the server's programs, as the postgres account when the tests run as root.
func (s *Server) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.asRoot {
		cmd = exec.Command("runuser", append([]string{"-u", osUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// The working directory must be readable by the postgres account.
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (s *Server) serverLog() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return "(no server log)"
	}
	return "server log:\n" + string(b)
}

// findBin picks the newest installed major version.
func findBin() (string, error) {
	dirs, _ := filepath.Glob(BinGlob)
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", fmt.Errorf("no PostgreSQL server binaries under %s", BinGlob)
	}
	sort.Slice(ok, func(i, j int) bool { return majorOf(ok[i]) < majorOf(ok[j]) })
	return ok[len(ok)-1], nil
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func chownTree(root, account string) error {
	u, err := user.Lookup(account)
	if err != nil {
		return fmt.Errorf("look up account %s: %w", account, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
