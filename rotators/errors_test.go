package rotators

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

func vaultErr(status int) error {
	return &vault.ResponseError{HTTPMethod: "GET", URL: "http://vault/v1/secret/data/x", StatusCode: status, Errors: []string{"boom"}}
}

// certErrors are TLS verification failures as the Vault client reports them: a request to a
// real TLS server whose certificate the client does not trust, and each kind of verification
// error inside the *url.Error the http client returns.
func certErrors(t *testing.T) map[string]error {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	resp, err := (&http.Client{}).Get(srv.URL)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("a client that does not trust the test server's CA got an answer")
	}
	wrap := func(inner error) error {
		return fmt.Errorf("write secret: %w", &url.Error{Op: "Put", URL: "https://vault/v1/x", Err: &tls.CertificateVerificationError{Err: inner}})
	}
	return map[string]error{
		"untrusted CA (real TLS server)": fmt.Errorf("read metadata: %w", err),
		"unknown authority":              wrap(x509.UnknownAuthorityError{}),
		"wrong host name":                wrap(x509.HostnameError{Host: "vault.example.com"}),
		"expired certificate":            wrap(x509.CertificateInvalidError{Reason: x509.Expired}),
	}
}

func TestIsRetryable(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	type testCase struct {
		name string
		err  error
		want bool
	}
	tests := []testCase{
		{"nil", nil, false},
		{"plain error", errors.New("something odd"), false},
		{"io.EOF", io.EOF, false},
		{"vault 429", vaultErr(429), true},
		{"vault 500", vaultErr(500), true},
		{"vault 502", vaultErr(502), true},
		{"vault 503 sealed or standby", vaultErr(503), true},
		{"vault 400", vaultErr(400), false},
		{"vault 403", vaultErr(403), false},
		{"vault 404", vaultErr(404), false},
		{"vault 405", vaultErr(405), false},
		{"wrapped vault 503", fmt.Errorf("read metadata: %w", vaultErr(503)), true},
		{"wrapped vault 403", fmt.Errorf("read metadata: %w", vaultErr(403)), false},
		{"net.OpError", opErr, true},
		{"wrapped net.OpError", fmt.Errorf("dial: %w", opErr), true},
		{"url.Error", &url.Error{Op: "Get", URL: "http://vault", Err: errors.New("EOF")}, true},
		{"context.DeadlineExceeded", context.DeadlineExceeded, true},
		{"wrapped DeadlineExceeded", fmt.Errorf("lookup: %w", context.DeadlineExceeded), true},
		{"context.Canceled", context.Canceled, true},
		{"sealed text", errors.New("Error making API request. Code: 503. Vault is sealed"), true},
		{"connection refused text", errors.New("dial tcp 127.0.0.1:8200: connection refused"), true},
		{"Retryable(plain)", Retryable(errors.New("try later")), true},
		{"Permanent(plain)", Permanent(errors.New("never")), false},
		{"Permanent(vault 503)", Permanent(vaultErr(503)), false},
		{"Permanent(net error)", Permanent(opErr), false},
		{"Permanent(DeadlineExceeded)", Permanent(context.DeadlineExceeded), false},
		{"Retryable(vault 403)", Retryable(vaultErr(403)), true},
		{"wrapped Retryable", fmt.Errorf("rotate: %w", Retryable(errors.New("x"))), true},
		{"wrapped Permanent", fmt.Errorf("rotate: %w", Permanent(vaultErr(503))), false},
		{"double wrapped Permanent", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Permanent(errors.New("x")))), false},
		// A Permanent mark anywhere in the chain wins over any Retryable mark, inner or outer:
		// IsRetryable looks for a permanent mark first.
		{"Permanent(Retryable(x))", Permanent(Retryable(errors.New("x"))), false},
		{"Retryable(Permanent(x))", Retryable(Permanent(errors.New("x"))), false},
		{"Join(Retryable, Permanent)", errors.Join(Retryable(errors.New("a")), Permanent(errors.New("b"))), false},
		{"Join(Retryable, plain)", errors.Join(Retryable(errors.New("a")), errors.New("b")), true},
	}
	// A certificate the client does not accept will not be accepted on the next try.
	for name, err := range certErrors(t) {
		tests = append(tests, testCase{"certificate: " + name, err, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRetryable(tc.err); got != tc.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestIsUnavailable(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	type testCase struct {
		name string
		err  error
		want bool
	}
	tests := []testCase{
		{"nil", nil, false},
		{"vault 429", vaultErr(429), true},
		{"vault 502", vaultErr(502), true},
		{"vault 503", fmt.Errorf("write: %w", vaultErr(503)), true},
		{"vault 504", vaultErr(504), true},
		{"vault 500 is a failure, not an outage", vaultErr(500), false},
		{"vault 403", vaultErr(403), false},
		{"vault transport error", &url.Error{Op: "Put", URL: "https://vault/v1/x", Err: opErr}, true},
		{"cancelled request", &url.Error{Op: "Put", URL: "https://vault/v1/x", Err: context.Canceled}, false},
		{"database dial error", fmt.Errorf("login: %w", opErr), false},
		{"sealed text", errors.New("Error making API request. Code: 503. Vault is sealed"), true},
		{"Permanent(vault 503)", Permanent(vaultErr(503)), false},
		{"Retryable(vault 503)", Retryable(vaultErr(503)), true},
	}
	// Vault answered, with a certificate the agent does not accept: not an outage to wait out.
	for name, err := range certErrors(t) {
		tests = append(tests, testCase{"certificate: " + name, err, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsUnavailable(tc.err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestMarksKeepTheError(t *testing.T) {
	base := fmt.Errorf("write new version: %w", io.ErrUnexpectedEOF)
	for name, mark := range map[string]func(error) error{"Retryable": Retryable, "Permanent": Permanent} {
		t.Run(name, func(t *testing.T) {
			if mark(nil) != nil {
				t.Errorf("%s(nil) is not nil", name)
			}
			err := mark(base)
			if err.Error() != base.Error() {
				t.Errorf("%s changed the message: %q, want %q", name, err.Error(), base.Error())
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s(err) does not unwrap to the original cause", name)
			}
			if errors.Unwrap(err) != base { //nolint:errorlint // the identity of the wrapped error is the point
				t.Errorf("errors.Unwrap(%s(err)) is not err", name)
			}
		})
	}
}
