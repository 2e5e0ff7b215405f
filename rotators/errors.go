package rotators

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// ErrUnknownKind is returned for a credential kind no rotator is registered for.
var ErrUnknownKind = errors.New("unknown credential kind")

// retryableError marks an error that may go away if the same work is tried again later.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// permanentError marks an error that trying again cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Retryable marks err as worth retrying later.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

// Permanent marks err as final: retrying the same work cannot succeed.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsRetryable reports whether err is worth retrying. Errors marked with Permanent or Retryable
// keep their mark; Vault API errors are classified by status (429 and 5xx retry, other 4xx do
// not); network failures and timeouts retry; anything else unclassified is permanent.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) {
		return false
	}
	var r *retryableError
	if errors.As(err, &r) {
		return true
	}
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500
	}
	if isCertificateError(err) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	// The Vault client reports a sealed or standby server in plain text on some paths.
	msg := err.Error()
	return strings.Contains(msg, "Vault is sealed") || strings.Contains(msg, "connection refused")
}

// IsUnavailable reports whether err means Vault itself cannot serve requests right now: it is
// sealed, overloaded or rate limiting (429, 502, 503, 504), or it could not be reached. Such a
// failure says nothing about the credential, so it is waited out rather than counted against
// the rotation. Errors marked Permanent, and certificate errors (see isCertificateError), are
// never unavailable.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) {
		return false
	}
	var re *vault.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if isCertificateError(err) {
		return false
	}
	// The Vault client reports transport failures as *url.Error; database drivers never do.
	var ue *url.Error
	if errors.As(err, &ue) {
		return !errors.Is(err, context.Canceled)
	}
	return strings.Contains(err.Error(), "Vault is sealed")
}

// isCertificateError reports whether err is a TLS certificate verification failure: a server
// certificate signed by a CA the client does not trust, issued for another host name, or
// otherwise invalid (expired, not yet valid). Retrying cannot make the certificate trusted, so
// it is permanent for IsRetryable and not an outage for IsUnavailable: Vault answers, only
// with a certificate this agent is not configured to accept.
func isCertificateError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid)
}
