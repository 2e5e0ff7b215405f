// Package vaultcall holds the small helpers the rotators and the entitlement checker share
// around Vault API calls: reading the HTTP status of an error, marking errors retryable or
// permanent, and cloning a client so a request is sent with another token.
package vaultcall

import (
	"errors"
	"fmt"
	"net/http"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// ClientAs returns a client like c that sends token (none when token is empty) instead of c's
// own. The namespace of c is kept.
func ClientAs(c *vault.Client, token string) (*vault.Client, error) {
	out, err := c.Clone()
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	out.ClearToken()
	if token != "" {
		out.SetToken(token)
	}
	out.ClearNamespace()
	if ns := c.Namespace(); ns != "" {
		out.SetNamespace(ns)
	}
	return out, nil
}

// Status returns the HTTP status of a Vault response error, or 0 when err is not one.
func Status(err error) int {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// Refused reports whether Vault answered a request with a client error (4xx but 429): the
// request was understood and denied.
func Refused(err error) bool {
	s := Status(err)
	return s >= 400 && s < 500 && s != http.StatusTooManyRequests
}

// Classify wraps err with what was being done and marks it retryable when err is, permanent
// otherwise.
func Classify(what string, err error) error {
	wrapped := fmt.Errorf("%s: %w", what, err)
	if rotators.IsRetryable(err) {
		return rotators.Retryable(wrapped)
	}
	return rotators.Permanent(wrapped)
}
