package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemdNotifier tells systemd (Type=notify) when the agent is up and when it stops. Without
// NOTIFY_SOCKET (not started by systemd) it does nothing.
type systemdNotifier struct {
	stderr io.Writer
}

// up sends READY=1 once the agent is up, before it waits for discovery, so systemd does not
// time the start out and restart the agent while a discovery source fails (/readyz says the
// agent is not ready meanwhile). STATUS= says what it waits for.
func (n systemdNotifier) up(waitingFor []string) {
	if len(waitingFor) == 0 {
		n.send(daemon.SdNotifyReady)
		return
	}
	n.send(daemon.SdNotifyReady + "\nSTATUS=waiting for the first discovery refresh of " + strings.Join(waitingFor, ", "))
}

// ready sets STATUS= once the agent consumes events.
func (n systemdNotifier) ready(string) { n.send("STATUS=consuming change events") }

// stopping sends STOPPING=1 when the agent begins to stop.
func (n systemdNotifier) stopping() { n.send(daemon.SdNotifyStopping) }

func (n systemdNotifier) send(state string) {
	// unsetEnvironment stays false: NOTIFY_SOCKET must survive READY=1 so STOPPING=1 can follow.
	if _, err := daemon.SdNotify(false, state); err != nil {
		fmt.Fprintf(n.stderr, "rotation-agent: notify systemd %s: %v\n", state, err)
	}
}
