package agent

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/delivery"
)

// OptionSidecar is the credential option that gives a credential to the sidecar of one
// application: `sidecar: payments` is rotated and delivered only by the agent whose
// ROTATION_AGENT_SIDECAR_APP is payments, and left alone by every other agent.
const OptionSidecar = "sidecar"

// Notification kinds and confirmations of sidecar mode.
const (
	NotifySignal    = "signal"
	NotifyHTTP      = "http"
	NotifyCommand   = "command"
	ConfirmByHook   = "hook"
	ConfirmByHealth = "health"
)

// Defaults that sidecar mode derives from the application's name when they are left as they
// are: a durable consumer and a journal bucket of its own.
const (
	defaultConsumer      = "rotation-agent"
	defaultJournalBucket = "ROTATION_JOURNAL"
)

// SidecarConfig is sidecar mode: the agent runs beside one application, rotates only that
// application's credentials, writes them to files the application reads, notifies it, and
// retires an old credential only once the application confirmed it uses the new one.
type SidecarConfig struct {
	// App names the application; set, it turns sidecar mode on. The agent then acts only on
	// credentials whose option "sidecar" equals it.
	App string `split_words:"true"`
	// SinksFile is the YAML file naming, per credential, the files to write and their format.
	SinksFile string `split_words:"true"`
	// Notify is how the application is told: signal, http or command.
	Notify string `split_words:"true"`
	// NotifySignal is the signal sent with notify=signal.
	NotifySignal string `split_words:"true" default:"HUP"`
	// NotifyPIDFile is the application's pid file, for notify=signal.
	NotifyPIDFile string `split_words:"true"`
	// NotifyProcess is the application's process name, for notify=signal without a pid file.
	NotifyProcess string `split_words:"true"`
	// NotifyURL is the application's reload hook, POSTed with notify=http.
	NotifyURL string `split_words:"true"`
	// NotifyCommand is the program and its arguments, comma separated, run with notify=command.
	NotifyCommand []string `split_words:"true"`
	// Confirm is what proves the application uses the new credential: hook or health.
	Confirm string `split_words:"true" default:"hook"`
	// HealthURL is polled with confirm=health until its answer holds the delivery token.
	HealthURL string `split_words:"true"`
	// ConfirmTimeout bounds how long the agent waits for the application after each delivery.
	ConfirmTimeout time.Duration `split_words:"true" default:"2m"`
	// ConfirmInterval spaces the attempts to notify and the polls of the health URL.
	ConfirmInterval time.Duration `split_words:"true" default:"2s"`
}

// enabled reports whether sidecar mode is on.
func (s SidecarConfig) enabled() bool { return s.App != "" }

// validate reports the problems of the sidecar settings; none when sidecar mode is off.
func (s SidecarConfig) validate() []error {
	if !s.enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	env := func(name string) string { return EnvPrefix + "_SIDECAR_" + name }
	if !validName(s.App) {
		bad("%s: %q must be letters, digits, '-' or '_'", env("APP"), s.App)
	}
	if s.SinksFile == "" {
		bad("%s: required in sidecar mode", env("SINKS_FILE"))
	} else if _, err := delivery.LoadSinks(s.SinksFile); err != nil {
		bad("%s: %w", env("SINKS_FILE"), err)
	}
	switch s.Notify {
	case NotifySignal:
		if _, err := delivery.ParseSignal(s.NotifySignal); err != nil {
			bad("%s: %w", env("NOTIFY_SIGNAL"), err)
		}
		if (s.NotifyPIDFile == "") == (s.NotifyProcess == "") {
			bad("%s or %s: set exactly one with notify=signal", env("NOTIFY_PID_FILE"), env("NOTIFY_PROCESS"))
		}
		if s.Confirm != ConfirmByHealth {
			bad("%s: a signal cannot confirm anything; set confirm=health with notify=signal", env("CONFIRM"))
		}
	case NotifyHTTP:
		if !httpURL(s.NotifyURL) {
			bad("%s: %q is not an http(s) URL", env("NOTIFY_URL"), s.NotifyURL)
		}
	case NotifyCommand:
		if len(s.NotifyCommand) == 0 || !filepath.IsAbs(s.NotifyCommand[0]) {
			bad("%s: the program must be an absolute path (no shell is used)", env("NOTIFY_COMMAND"))
		}
	default:
		bad("%s: %q is not one of signal, http, command", env("NOTIFY"), s.Notify)
	}
	switch s.Confirm {
	case ConfirmByHook:
	case ConfirmByHealth:
		if !httpURL(s.HealthURL) {
			bad("%s: %q is not an http(s) URL (required with confirm=health)", env("HEALTH_URL"), s.HealthURL)
		}
	default:
		bad("%s: %q is not one of hook, health", env("CONFIRM"), s.Confirm)
	}
	if s.ConfirmTimeout < time.Second {
		bad("%s: must be at least 1s", env("CONFIRM_TIMEOUT"))
	}
	if s.ConfirmInterval < 100*time.Millisecond || s.ConfirmInterval > s.ConfirmTimeout {
		bad("%s: must be between 100ms and the confirm timeout", env("CONFIRM_INTERVAL"))
	}
	return errs
}

// withSidecarDefaults gives a sidecar, when the consumer and journal bucket settings are left
// at their defaults, a durable consumer and a journal bucket of its own, named after the
// application: rotation-agent-sidecar-<app> and ROTATION_JOURNAL_SIDECAR_<APP>.
func (c Config) withSidecarDefaults() Config {
	if !c.Sidecar.enabled() {
		return c
	}
	if c.NATS.Consumer == defaultConsumer {
		c.NATS.Consumer = defaultConsumer + "-sidecar-" + c.Sidecar.App
	}
	if c.NATS.JournalBucket == defaultJournalBucket {
		c.NATS.JournalBucket = defaultJournalBucket + "_SIDECAR_" + strings.ToUpper(c.Sidecar.App)
	}
	return c
}

func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
