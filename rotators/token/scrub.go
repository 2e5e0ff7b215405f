package token

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// redacted stands for the token in a scrubbed error.
const redacted = "[token]"

// scrub classifies err like vaultcall.Classify, with the token replaced should Vault's answer
// repeat it, so the value never reaches a log, an error or evidence. The scrubbed error keeps
// err's class: a Vault answer stays a *vault.ResponseError with its status (so a 503 still
// counts as Vault unavailable), a transport failure a *url.Error, a cancelled or timed out
// request its context error; none of them holds the token.
func scrub(what string, err error, token string) error {
	if !strings.Contains(err.Error(), token) {
		return vaultcall.Classify(what, err)
	}
	// Marked by the original error's class: the stand-ins cannot carry all of it (a
	// certificate error inside a transport error, say).
	wrapped := fmt.Errorf("%s: %w", what, &scrubbedError{msg: strings.ReplaceAll(err.Error(), token, redacted), class: classOf(err, token)})
	if rotators.IsRetryable(err) {
		return rotators.Retryable(wrapped)
	}
	return rotators.Permanent(wrapped)
}

// scrubbedError is an error whose text had the token replaced. It unwraps to token-free copies
// of what classifies the original error (see classOf), never to the original.
type scrubbedError struct {
	msg   string
	class []error
}

func (e *scrubbedError) Error() string   { return e.msg }
func (e *scrubbedError) Unwrap() []error { return e.class }

// classOf returns token-free stand-ins for what rotators.IsRetryable and IsUnavailable look for
// in err: its Vault answer (status kept, messages scrubbed), its transport error, its context
// error.
func classOf(err error, token string) []error {
	var out []error
	var re *vault.ResponseError
	if errors.As(err, &re) {
		cp := *re
		cp.URL = strings.ReplaceAll(cp.URL, token, redacted)
		cp.Errors = make([]string, len(re.Errors))
		for i, m := range re.Errors {
			cp.Errors[i] = strings.ReplaceAll(m, token, redacted)
		}
		out = append(out, &cp)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		out = append(out, &url.Error{Op: ue.Op, URL: strings.ReplaceAll(ue.URL, token, redacted), Err: errors.New(strings.ReplaceAll(ue.Err.Error(), token, redacted))})
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			out = append(out, ctxErr)
		}
	}
	return out
}
