package main

import (
	"fmt"
	"io"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemdNotifier tells systemd (Type=notify) when the agent is ready and when it stops. Without
// NOTIFY_SOCKET (not started by systemd) it does nothing.
type systemdNotifier struct {
	stderr io.Writer
}

// ready sends READY=1 once the agent consumes events.
func (n systemdNotifier) ready(string) { n.send(daemon.SdNotifyReady) }

// stopping sends STOPPING=1 when the agent begins to stop.
func (n systemdNotifier) stopping() { n.send(daemon.SdNotifyStopping) }

func (n systemdNotifier) send(state string) {
	// unsetEnvironment stays false: NOTIFY_SOCKET must survive READY=1 so STOPPING=1 can follow.
	if _, err := daemon.SdNotify(false, state); err != nil {
		fmt.Fprintf(n.stderr, "rotation-agent: notify systemd %s: %v\n", state, err)
	}
}
