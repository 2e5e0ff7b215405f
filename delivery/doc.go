// Package delivery hands a rotated credential to the application that uses it, for the agent's
// sidecar mode: it renders the credential into a file format (raw value, env file, JSON, PEM
// bundle), writes the file atomically with a restrictive mode, notifies the application (a
// signal, an HTTP reload hook or a command) and checks that the application confirmed it uses
// the new credential. Nothing in this package talks to Vault or NATS, and no value it handles
// is ever logged or returned in an error.
package delivery
