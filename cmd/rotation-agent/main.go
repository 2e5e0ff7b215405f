// Command rotation-agent brings credentials back to the approved state after IT changes: it
// consumes change events from NATS JetStream, rotates credentials through Vault and publishes
// evidence. main only wires signals; everything else lives in the agent package.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	code := runCLI(ctx, os.Args[1:], os.Stdout, os.Stderr, reload)
	signal.Stop(hup)
	stop()
	os.Exit(code)
}
