package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Notice tells the application which credential changed. It holds no secret value.
type Notice struct {
	// Credential is the credential identifier, <kind>:<mount>/<path>.
	Credential string `json:"credential"`
	// Files are the sink files that now hold the new credential.
	Files []string `json:"files"`
	// Token names this delivery; the application reports it on its health URL once it uses
	// the new credential (it is also in each file's .version neighbour).
	Token string `json:"token"`
}

// Notifier tells the application to load a new credential. Confirms reports whether a
// successful Notify already proves the application took it (a reload hook that answered, a
// command that succeeded), as opposed to a signal, which proves nothing.
type Notifier interface {
	Notify(ctx context.Context, n Notice) error
	Confirms() bool
	// Kind names the notifier in evidence: signal, http or command.
	Kind() string
}

// Signal sends a signal to the application's process, found through a pid file or by its
// process name (the command name in /proc/<pid>/comm; the containers of a pod must then share
// a process namespace).
type Signal struct {
	Signal  syscall.Signal
	PIDFile string
	Process string
	// Proc is the proc file system root; "/proc" when empty.
	Proc string
}

// Kind implements Notifier.
func (Signal) Kind() string { return "signal" }

// Confirms implements Notifier: a delivered signal says nothing about what the process did.
func (Signal) Confirms() bool { return false }

// Notify implements Notifier.
func (s Signal) Notify(_ context.Context, _ Notice) error {
	pids, err := s.pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, s.Signal); err != nil {
			return fmt.Errorf("signal %s to process %d: %w", s.Signal, pid, err)
		}
	}
	return nil
}

func (s Signal) pids() ([]int, error) {
	if s.PIDFile != "" {
		raw, err := os.ReadFile(s.PIDFile)
		if err != nil {
			return nil, fmt.Errorf("read pid file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 1 {
			return nil, fmt.Errorf("pid file %s does not hold a process id", s.PIDFile)
		}
		return []int{pid}, nil
	}
	proc := s.Proc
	if proc == "" {
		proc = "/proc"
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == s.Process {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process named %q (does the pod share its process namespace?)", s.Process)
	}
	return pids, nil
}

// HTTPHook posts the Notice as JSON to the application's reload URL; any 2xx answer means the
// application loaded the new credential.
type HTTPHook struct {
	URL    string
	Client *http.Client
}

// Kind implements Notifier.
func (HTTPHook) Kind() string { return "http" }

// Confirms implements Notifier.
func (HTTPHook) Confirms() bool { return true }

// Notify implements Notifier.
func (h HTTPHook) Notify(ctx context.Context, n Notice) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("reload hook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reload hook: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("reload hook answered %s", resp.Status)
	}
	return nil
}

// Command runs a program (no shell) with the notice in its environment: ROTATION_CREDENTIAL,
// ROTATION_FILES (separated by ':') and ROTATION_DELIVERY_TOKEN. It does not inherit the
// agent's environment, which holds the agent's own secrets (its Vault token, NATS password,
// AppRole secret id): only PATH, HOME and LANG are passed on. Exit status 0 means
// the application loaded the new credential. Its output is discarded: it could hold anything.
type Command struct {
	Path string
	Args []string
	// Timeout bounds one run; 30s when zero.
	Timeout time.Duration
}

// Kind implements Notifier.
func (Command) Kind() string { return "command" }

// Confirms implements Notifier.
func (Command) Confirms() bool { return true }

// Notify implements Notifier.
func (c Command) Notify(ctx context.Context, n Notice) error {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = commandEnv(n)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("notify command %s: did not finish within %s", filepath.Base(c.Path), timeout)
	case errors.As(err, &exit):
		return fmt.Errorf("notify command %s: exit status %d", filepath.Base(c.Path), exit.ExitCode())
	default:
		return fmt.Errorf("notify command %s: %w", filepath.Base(c.Path), err)
	}
}

// commandInherits names the variables of the agent's environment that a notify command
// receives (when set): enough to find programs and run them in the host's locale, nothing
// that could hold a secret.
var commandInherits = []string{"PATH", "HOME", "LANG"}

// commandEnv is a notify command's whole environment: the commandInherits variables the agent
// has, and the notice.
func commandEnv(n Notice) []string {
	var env []string
	for _, name := range commandInherits {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return append(env,
		"ROTATION_CREDENTIAL="+n.Credential,
		"ROTATION_FILES="+strings.Join(n.Files, ":"),
		"ROTATION_DELIVERY_TOKEN="+n.Token,
	)
}

// Health asks the application which credential it uses: a GET of URL must answer 2xx with a
// body that contains the delivery's token.
type Health struct {
	URL    string
	Client *http.Client
}

// InUse reports whether the application reports token on its health URL. An error means the
// URL could not be asked; false with no error means it answered without the token.
func (h Health) InUse(ctx context.Context, token string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return false, fmt.Errorf("health URL: %w", err)
	}
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("health URL: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false, fmt.Errorf("health URL: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, fmt.Errorf("health URL answered %s", resp.Status)
	}
	return bytes.Contains(body, []byte(token)), nil
}

// ParseSignal turns a signal name (HUP, SIGHUP, USR1...) into a signal.
func ParseSignal(name string) (syscall.Signal, error) {
	switch strings.TrimPrefix(strings.ToUpper(name), "SIG") {
	case "HUP":
		return syscall.SIGHUP, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	case "TERM":
		return syscall.SIGTERM, nil
	case "INT":
		return syscall.SIGINT, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	}
	return 0, fmt.Errorf("%q is not one of HUP, USR1, USR2, TERM, INT, QUIT", name)
}
