package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/sirupsen/logrus"
)

// EnvPrefix is the prefix of every environment variable the agent reads, apart from the
// standard VAULT_* variables it honours as fall-backs.
const EnvPrefix = "ROTATION_AGENT"

// Config is the whole configuration of the agent, read from the environment by Load.
// Fields tagged secret are masked when printed and may be given through a NAME_FILE variable.
type Config struct {
	// AgentID names this agent in evidence and in the consumer; defaults to the host name.
	AgentID string `split_words:"true"`
	// LogLevel is one of trace, debug, info, warn, error.
	LogLevel string `split_words:"true" default:"info"`
	// SubjectPrefix is the first token of every NATS subject the agent uses.
	SubjectPrefix string `split_words:"true" default:"rotation"`
	// MaxEventBytes refuses larger inbound payloads.
	MaxEventBytes int `split_words:"true" default:"65536"`
	// ShutdownTimeout bounds how long a stop waits for the work in hand.
	ShutdownTimeout time.Duration `split_words:"true" default:"30s"`
	// StartupTimeout bounds how long the first contact with Vault and NATS may take.
	StartupTimeout time.Duration `split_words:"true" default:"15s"`
	// Overlap is how long an old credential keeps working after the new one is promoted,
	// unless the credential sets its own "overlap" option; zero retires it at once.
	Overlap time.Duration `split_words:"true" default:"0s"`
	// LockTTL is how long a worker's lock on a credential lasts without renewal; a worker that
	// dies releases its locks after it.
	LockTTL time.Duration `split_words:"true" default:"1m"`
	// RetireInterval is how often the agent looks for old credentials due to be retired.
	RetireInterval time.Duration `split_words:"true" default:"15s"`
	// InventoryFile is the YAML file of bindings from targets to credentials; none when empty.
	InventoryFile string `split_words:"true"`
	// DiscoveryFile is a YAML file that turns on discovery of bindings in Vault (KV tags, PKI
	// certificates, AppRole and token metadata, database static roles); none when empty.
	DiscoveryFile string `split_words:"true"`
	// InventoryReloadInterval is how often the inventory file is checked for changes.
	InventoryReloadInterval time.Duration `split_words:"true" default:"10s"`
	// MetricsListen is the address of the HTTP server for /metrics, /healthz and /readyz;
	// empty turns the server off.
	MetricsListen string `split_words:"true" default:"127.0.0.1:9464"`
	// Password describes how generated passwords look.
	Password PasswordConfig
	// Vault is how the agent reaches and authenticates to Vault.
	Vault VaultConfig
	// NATS is how the agent reaches NATS JetStream.
	NATS NATSConfig
	// Schedule is the agent's own scheduled work (see work_config.go).
	Schedule ScheduleConfig
	// Review is the post-change review of emergency changes.
	Review ReviewConfig
	// Manual is manual rotation on request.
	Manual ManualConfig
	// Evidence is how evidence records are signed and entitlements remediated.
	Evidence EvidenceConfig
	// Sidecar turns on sidecar mode (see config_sidecar.go) when its App is set.
	Sidecar SidecarConfig

	// unread names the environment variables of the settings Load could not read (a value
	// that does not parse, an unreadable NAME_FILE): they keep their defaults, Validate counts
	// such a secret as given, and PrintEffective marks them.
	unread map[string]bool
}

// PasswordConfig is the default generation policy for new secret values.
type PasswordConfig struct {
	// Length of generated values.
	Length int `split_words:"true" default:"32"`
	// Charset the values are drawn from.
	Charset string `split_words:"true" default:"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"`
}

// Vault auth methods.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// VaultConfig is the connection to Vault. Addr, CACert, Namespace and Token fall back to the
// standard VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE and VAULT_TOKEN variables.
type VaultConfig struct {
	// Addr is the Vault address, for example https://vault.example:8200.
	Addr string `split_words:"true"`
	// CACert is a PEM file of the CA that signed Vault's certificate.
	CACert string `split_words:"true"`
	// TLSServerName overrides the name checked in Vault's certificate.
	TLSServerName string `split_words:"true"`
	// Namespace is the Vault Enterprise namespace.
	Namespace string `split_words:"true"`
	// AuthMethod is token, approle or kubernetes.
	AuthMethod string `split_words:"true" default:"token"`
	// Token is a Vault token, for the token method.
	Token string `split_words:"true" secret:"true"`
	// TokenFile is a file holding the token, re-read at every login (for a Vault Agent sink).
	TokenFile string `split_words:"true"`
	// AppRoleMount is the mount path of the AppRole auth method.
	AppRoleMount string `split_words:"true" default:"approle"`
	// AppRoleRoleID is the role id of the agent's AppRole.
	AppRoleRoleID string `split_words:"true"`
	// AppRoleSecretIDFile is a file holding the secret id, re-read at every login.
	AppRoleSecretIDFile string `split_words:"true"`
	// AppRoleSecretIDWrapped says the file holds a response-wrapping token around the secret id.
	AppRoleSecretIDWrapped bool `split_words:"true"`
	// KubernetesRole is the Vault role for Kubernetes auth.
	KubernetesRole string `split_words:"true"`
	// KubernetesMount is the mount path of the Kubernetes auth method.
	KubernetesMount string `split_words:"true" default:"kubernetes"`
	// KubernetesTokenFile is the projected service account token.
	KubernetesTokenFile string `split_words:"true" default:"/var/run/secrets/kubernetes.io/serviceaccount/token"`
	// Timeout bounds one request to Vault.
	Timeout time.Duration `split_words:"true" default:"30s"`
}

// NATSConfig is the connection to NATS and the JetStream resources the agent uses.
type NATSConfig struct {
	// URL lists the servers to connect to, comma separated.
	URL []string `split_words:"true" default:"nats://127.0.0.1:4222"`
	// Embedded starts an in-process NATS server with JetStream instead of connecting to URLs.
	Embedded bool `split_words:"true"`
	// EmbeddedListen is the address the embedded server listens on.
	EmbeddedListen string `split_words:"true" default:"127.0.0.1:4222"`
	// EmbeddedStoreDir is where the embedded server keeps JetStream data.
	EmbeddedStoreDir string `split_words:"true" default:"/var/lib/rotation-agent/jetstream"`
	// CredsFile is a NATS credentials file (JWT and nkey seed).
	CredsFile string `split_words:"true"`
	// NkeySeedFile is a file holding an nkey seed.
	NkeySeedFile string `split_words:"true"`
	// User and Password authenticate with a user name and password.
	User     string `split_words:"true"`
	Password string `split_words:"true" secret:"true"`
	// Token authenticates with a token.
	Token string `split_words:"true" secret:"true"`
	// CACert, Cert and Key configure TLS (the pair for mutual TLS).
	CACert string `split_words:"true"`
	Cert   string `split_words:"true"`
	Key    string `split_words:"true"`
	// ChangeStream is the stream holding change events.
	ChangeStream string `split_words:"true" default:"ROTATION_CHANGES"`
	// EvidenceStream is the stream holding evidence and rejection records.
	EvidenceStream string `split_words:"true" default:"ROTATION_EVIDENCE"`
	// JournalBucket is the key-value bucket holding the rotation journal.
	JournalBucket string `split_words:"true" default:"ROTATION_JOURNAL"`
	// BindStreams uses operator-managed streams and bucket as they are instead of creating or updating them.
	BindStreams bool `split_words:"true"`
	// Replicas is the replica count of streams the agent creates.
	Replicas int `split_words:"true" default:"1"`
	// Consumer is the durable consumer name shared by all replicas of the agent.
	Consumer string `split_words:"true" default:"rotation-agent"`
	// AckWait is how long a delivered event may go unacknowledged before redelivery.
	AckWait time.Duration `split_words:"true" default:"2m"`
	// MaxDeliver bounds deliveries of one event; on the last one, work that still fails is
	// reported as failed in the evidence instead of being retried.
	MaxDeliver int `split_words:"true" default:"10"`
	// DuplicateWindow is the stream's de-duplication window for Nats-Msg-Id.
	DuplicateWindow time.Duration `split_words:"true" default:"2m"`
	// EvidenceMaxAge is how long the evidence stream keeps records, when the agent creates it.
	EvidenceMaxAge time.Duration `split_words:"true" default:"8760h"`
}

// Defaults returns the configuration with every default applied and nothing read from the
// environment, for programs that embed the agent and set fields themselves.
func Defaults() Config {
	var cfg Config
	// No environment variable name can start with '-', so only defaults apply.
	if err := envconfig.Process("-", &cfg); err != nil {
		panic(fmt.Sprintf("config defaults: %v", err))
	}
	return cfg
}

// Load reads the configuration from the environment: envconfig with the ROTATION_AGENT prefix,
// then the standard VAULT_* fall-backs, then NAME_FILE variants of secret fields. Every setting
// is read on its own, so one value that does not parse neither hides the others nor leaves
// them without their defaults: the error lists every setting that could not be read (a value
// that does not parse, an unreadable NAME_FILE), one joined error each, and such a setting
// keeps its default. Load does not validate; call Validate, or LoadAndValidate for both.
func Load() (Config, error) {
	cfg := Defaults()
	unread := map[string]bool{}
	var errs []error
	for _, field := range describe(&cfg) {
		if _, set := os.LookupEnv(field.env); !set {
			continue
		}
		if err := readSetting(field); err != nil {
			errs = append(errs, fmt.Errorf("invalid configuration: %w", err))
			unread[field.env] = true
		}
	}
	fallback := []struct {
		target   *string
		own, std string
	}{
		{&cfg.Vault.Addr, EnvPrefix + "_VAULT_ADDR", "VAULT_ADDR"},
		{&cfg.Vault.CACert, EnvPrefix + "_VAULT_CA_CERT", "VAULT_CACERT"},
		{&cfg.Vault.Namespace, EnvPrefix + "_VAULT_NAMESPACE", "VAULT_NAMESPACE"},
		{&cfg.Vault.Token, EnvPrefix + "_VAULT_TOKEN", "VAULT_TOKEN"},
		{&cfg.Vault.TLSServerName, EnvPrefix + "_VAULT_TLS_SERVER_NAME", "VAULT_TLS_SERVER_NAME"},
	}
	for _, f := range fallback {
		if v, set := os.LookupEnv(f.own); set && v != "" {
			continue
		}
		if v, ok := os.LookupEnv(f.std); ok && v != "" {
			*f.target = v
		}
	}
	for _, field := range describe(&cfg) {
		if !field.secret || field.hasFileSibling {
			continue
		}
		path, ok := os.LookupEnv(field.env + "_FILE")
		if !ok || path == "" {
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid configuration: %s_FILE: %w", field.env, err))
			unread[field.env] = true
			continue
		}
		field.value.SetString(strings.TrimRight(string(raw), "\r\n"))
	}
	if cfg.AgentID == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "rotation-agent"
		}
		cfg.AgentID = host
	}
	if len(unread) > 0 {
		cfg.unread = unread
	}
	return cfg, errors.Join(errs...)
}

// LoadAndValidate is Load followed by Validate, reporting the problems of both at once: every
// setting that could not be read, then every problem Validate finds in the rest.
func LoadAndValidate() (Config, error) {
	cfg, loadErr := Load()
	return cfg, errors.Join(append(problems(loadErr), problems(cfg.Validate())...)...)
}

// problems returns the errors an errors.Join result holds, or err alone.
func problems(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// unreadSettings refuses a configuration from a Load that failed: the settings it could not
// read hold their defaults (an unreadable secret is empty), not what the operator set.
func (c Config) unreadSettings() error {
	if len(c.unread) == 0 {
		return nil
	}
	names := make([]string, 0, len(c.unread))
	for name := range c.unread {
		names = append(names, name)
	}
	sort.Strings(names)
	return fmt.Errorf("invalid configuration: %s could not be read (see the errors of Load)", strings.Join(names, ", "))
}

// readSetting parses the environment variable of one setting into its field with envconfig's
// own rules, through a one-field struct, so that a failure concerns this setting alone. The
// error names the variable, and the value only when the setting is not secret.
func readSetting(field configField) error {
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{
		Name: "V", Type: field.value.Type(), Tag: reflect.StructTag(`envconfig:"` + field.env + `"`),
	}}))
	err := envconfig.Process("", holder.Interface())
	if err == nil {
		field.value.Set(holder.Elem().Field(0))
		return nil
	}
	kind := kindName(field.value.Type())
	var pe *envconfig.ParseError
	switch {
	case field.secret:
		return fmt.Errorf("%s: the value is not a valid %s", field.env, kind)
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %q is not a valid %s: %w", field.env, pe.Value, kind, pe.Err)
	default:
		return fmt.Errorf("%s: %w", field.env, err)
	}
}

// kindName describes a setting's type for an operator.
func kindName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "duration (for example 90s, 5m or 1h30m)"
	case t.Kind() == reflect.Bool:
		return "boolean (true or false)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "whole number"
	}
	return t.String()
}

// validateOffline checks the settings an offline plan uses (the event size limit, the
// inventory and discovery files); Vault and NATS settings may be absent. Validate starts
// with these checks.
func (c Config) validateOffline() error {
	var errs []error
	env := func(name string) string { return EnvPrefix + "_" + name }
	if c.MaxEventBytes < 1024 || c.MaxEventBytes > 8<<20 {
		errs = append(errs, fmt.Errorf("%s: %d is out of range (1024 to 8388608)", env("MAX_EVENT_BYTES"), c.MaxEventBytes))
	}
	checkFile(&errs, env("INVENTORY_FILE"), c.InventoryFile)
	checkFile(&errs, env("DISCOVERY_FILE"), c.DiscoveryFile)
	return errors.Join(errs...)
}

// Validate reports every problem of the configuration at once, one per joined error, each
// naming the environment variable to fix.
func (c Config) Validate() error {
	errs := problems(c.validateOffline())
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	env := func(name string) string { return EnvPrefix + "_" + name }

	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		bad("%s: %q is not a log level (trace, debug, info, warn, error)", env("LOG_LEVEL"), c.LogLevel)
	}
	if c.SubjectPrefix == "" || strings.ContainsAny(c.SubjectPrefix, " *>\t") ||
		strings.HasPrefix(c.SubjectPrefix, ".") || strings.HasSuffix(c.SubjectPrefix, ".") {
		bad("%s: %q is not a valid subject prefix (tokens separated by dots, no wildcards or spaces)", env("SUBJECT_PREFIX"), c.SubjectPrefix)
	}
	if c.ShutdownTimeout <= 0 {
		bad("%s: must be positive", env("SHUTDOWN_TIMEOUT"))
	}
	if c.StartupTimeout <= 0 {
		bad("%s: must be positive", env("STARTUP_TIMEOUT"))
	}
	if c.InventoryReloadInterval < time.Second {
		bad("%s: must be at least 1s", env("INVENTORY_RELOAD_INTERVAL"))
	}
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil {
			bad("%s: %q is not a host:port address (for example 127.0.0.1:9464 or :9464)", env("METRICS_LISTEN"), c.MetricsListen)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("%s: %q has no valid port", env("METRICS_LISTEN"), c.MetricsListen)
		}
	}
	if c.Overlap < 0 || c.Overlap > maxOverlap {
		bad("%s: must be between 0s and %s", env("OVERLAP"), maxOverlap)
	}
	if c.LockTTL < 3*time.Second {
		bad("%s: must be at least 3s", env("LOCK_TTL"))
	}
	if c.RetireInterval < time.Second {
		bad("%s: must be at least 1s", env("RETIRE_INTERVAL"))
	}
	if c.Password.Length < 16 || c.Password.Length > 1024 {
		bad("%s: %d is out of range (16 to 1024)", env("PASSWORD_LENGTH"), c.Password.Length)
	}
	if distinct(c.Password.Charset) < 10 {
		bad("%s: needs at least 10 distinct characters", env("PASSWORD_CHARSET"))
	}

	v := c.Vault
	if v.Addr == "" {
		bad("%s (or VAULT_ADDR): required", env("VAULT_ADDR"))
	} else if u, err := url.Parse(v.Addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("%s: %q is not an http(s) URL", env("VAULT_ADDR"), v.Addr)
	}
	if v.CACert != "" {
		if _, err := os.Stat(v.CACert); err != nil {
			bad("%s (or VAULT_CACERT): %v", env("VAULT_CA_CERT"), err)
		}
	}
	if v.Timeout <= 0 {
		bad("%s: must be positive", env("VAULT_TIMEOUT"))
	}
	switch v.AuthMethod {
	case AuthToken:
		if v.Token == "" && v.TokenFile == "" {
			bad("%s (or VAULT_TOKEN) or %s: one is required for the token auth method", env("VAULT_TOKEN"), env("VAULT_TOKEN_FILE"))
		}
		if v.Token != "" && v.TokenFile != "" {
			bad("%s and %s: set only one", env("VAULT_TOKEN"), env("VAULT_TOKEN_FILE"))
		}
		checkFile(&errs, env("VAULT_TOKEN_FILE"), v.TokenFile)
	case AuthAppRole:
		if v.AppRoleRoleID == "" {
			bad("%s: required for the approle auth method", env("VAULT_APP_ROLE_ROLE_ID"))
		}
		if v.AppRoleSecretIDFile == "" {
			bad("%s: required for the approle auth method", env("VAULT_APP_ROLE_SECRET_ID_FILE"))
		}
		checkFile(&errs, env("VAULT_APP_ROLE_SECRET_ID_FILE"), v.AppRoleSecretIDFile)
	case AuthKubernetes:
		if v.KubernetesRole == "" {
			bad("%s: required for the kubernetes auth method", env("VAULT_KUBERNETES_ROLE"))
		}
		if v.KubernetesTokenFile == "" {
			bad("%s: required for the kubernetes auth method", env("VAULT_KUBERNETES_TOKEN_FILE"))
		} else if err := checkReadable(v.KubernetesTokenFile); err != nil {
			bad("%s: the service account token cannot be read: %w", env("VAULT_KUBERNETES_TOKEN_FILE"), err)
		}
	default:
		bad("%s: %q is not one of token, approle, kubernetes", env("VAULT_AUTH_METHOD"), v.AuthMethod)
	}

	n := c.NATS
	if !n.Embedded {
		if len(n.URL) == 0 {
			bad("%s: at least one URL is required", env("NATS_URL"))
		}
		for _, raw := range n.URL {
			u, err := url.Parse(raw)
			switch {
			case err != nil || u.Host == "" || !oneOf(u.Scheme, "nats", "tls", "ws", "wss"):
				bad("%s: %q is not a nats://, tls://, ws:// or wss:// URL", env("NATS_URL"), redactURL(raw))
			case u.User != nil:
				bad("%s: %q carries credentials; use %s/%s (or their _FILE variants) instead", env("NATS_URL"), redactURL(raw), env("NATS_USER"), env("NATS_PASSWORD"))
			}
		}
	} else if n.EmbeddedStoreDir == "" {
		bad("%s: required with an embedded server", env("NATS_EMBEDDED_STORE_DIR"))
	}
	// A secret whose NAME_FILE could not be read was given all the same; Load reported the file.
	password := n.Password != "" || c.unread[env("NATS_PASSWORD")]
	token := n.Token != "" || c.unread[env("NATS_TOKEN")]
	auths := 0
	for _, set := range []bool{n.CredsFile != "", n.NkeySeedFile != "", n.User != "" || password, token} {
		if set {
			auths++
		}
	}
	if auths > 1 {
		bad("NATS: set only one of %s, %s, %s/%s, %s", env("NATS_CREDS_FILE"), env("NATS_NKEY_SEED_FILE"), env("NATS_USER"), env("NATS_PASSWORD"), env("NATS_TOKEN"))
	}
	if (n.User != "") != password {
		bad("%s and %s: set both or neither", env("NATS_USER"), env("NATS_PASSWORD"))
	}
	if (n.Cert == "") != (n.Key == "") {
		bad("%s and %s: set both or neither", env("NATS_CERT"), env("NATS_KEY"))
	}
	checkFile(&errs, env("NATS_CREDS_FILE"), n.CredsFile)
	checkFile(&errs, env("NATS_NKEY_SEED_FILE"), n.NkeySeedFile)
	checkFile(&errs, env("NATS_CA_CERT"), n.CACert)
	checkFile(&errs, env("NATS_CERT"), n.Cert)
	checkFile(&errs, env("NATS_KEY"), n.Key)
	for _, named := range []struct{ env, value string }{
		{"NATS_CHANGE_STREAM", n.ChangeStream}, {"NATS_EVIDENCE_STREAM", n.EvidenceStream},
		{"NATS_JOURNAL_BUCKET", n.JournalBucket}, {"NATS_CONSUMER", n.Consumer},
	} {
		if !validName(named.value) {
			bad("%s: %q must be letters, digits, '-' or '_'", env(named.env), named.value)
		}
	}
	if n.ChangeStream == n.EvidenceStream {
		bad("%s and %s: must differ", env("NATS_CHANGE_STREAM"), env("NATS_EVIDENCE_STREAM"))
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		bad("%s: %d is out of range (1 to 5)", env("NATS_REPLICAS"), n.Replicas)
	}
	if n.AckWait < time.Second {
		bad("%s: must be at least 1s", env("NATS_ACK_WAIT"))
	}
	if n.MaxDeliver < 1 {
		bad("%s: must be at least 1", env("NATS_MAX_DELIVER"))
	}
	if n.DuplicateWindow < time.Second {
		bad("%s: must be at least 1s", env("NATS_DUPLICATE_WINDOW"))
	}
	c.validateWork(bad)
	errs = append(errs, c.validateEvidence()...)
	errs = append(errs, c.Sidecar.validate()...)
	for i, e := range errs {
		errs[i] = fmt.Errorf("invalid configuration: %w", e)
	}
	return errors.Join(errs...)
}

// redactURL hides the password of a URL that carries one.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "…@" + raw[i+1:]
		}
		return raw
	}
	return u.Redacted()
}

func checkFile(errs *[]error, name, path string) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", name, err))
	}
}

// checkReadable opens path for reading and closes it again, without reading its content; a
// directory is refused too, since reading it fails.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err == nil && info.IsDir() {
		err = fmt.Errorf("%s is a directory", path)
	}
	return errors.Join(err, f.Close())
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

func distinct(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}
