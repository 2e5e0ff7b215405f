package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// appRoleFile is what the session remembers of the AppRole secret id file between logins. The
// file is read again at every login, so an operator recovers a spent secret id by writing a
// fresh secret id (or wrapping token) into it; only the unwrapped secret id of a wrapping token
// is kept, because a wrapping token unwraps once.
type appRoleFile struct {
	// wrappingToken is the token last unwrapped, and secretID the secret id it held.
	wrappingToken, secretID string
	// spentWrappingToken is a token whose secret id Vault refused: unwrapping it again would
	// fail, so the agent waits for the file to change.
	spentWrappingToken string
}

// appRoleLogin logs in with the role id and the secret id from the file.
func (s *vaultSession) appRoleLogin(ctx context.Context) (*vault.Secret, error) {
	file := s.cfg.AppRoleSecretIDFile
	secretID, err := s.appRoleSecretID(ctx)
	if err != nil {
		return nil, fmt.Errorf("approle secret id file %s: %w", file, err)
	}
	secret, err := s.write(ctx, "auth/"+s.cfg.AppRoleMount+"/login", map[string]any{"role_id": s.cfg.AppRoleRoleID, "secret_id": secretID})
	if err != nil && vaultSays(err, "secret id", "secret_id") {
		if s.cfg.AppRoleSecretIDWrapped {
			s.appRole = appRoleFile{spentWrappingToken: s.appRole.wrappingToken}
		}
		// keepAlive logs this error at every attempt, so the log says what to do until the
		// file is fixed; neither the secret id nor the wrapping token is in it.
		return nil, fmt.Errorf("approle secret id file %s: vault refused the secret id: it is spent (used up or expired) or not the role's; write a fresh one to the file: %w", file, err)
	}
	return secret, err
}

// appRoleSecretID reads the secret id file: a plain secret id is used as read; a wrapping
// token is unwrapped the first time it is seen.
func (s *vaultSession) appRoleSecretID(ctx context.Context) (string, error) {
	raw, err := os.ReadFile(s.cfg.AppRoleSecretIDFile)
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	value := strings.TrimSpace(string(raw))
	if value == "" {
		return "", errors.New("the file is empty")
	}
	s.redactor.Add(value)
	if !s.cfg.AppRoleSecretIDWrapped {
		return value, nil
	}
	switch value {
	case s.appRole.wrappingToken:
		return s.appRole.secretID, nil
	case s.appRole.spentWrappingToken:
		return "", errors.New("the file still holds the wrapping token of the secret id vault refused; write a fresh wrapping token to the file")
	}
	id, err := s.unwrapSecretID(ctx, value)
	if err != nil {
		return "", err
	}
	s.redactor.Add(id)
	s.appRole = appRoleFile{wrappingToken: value, secretID: id}
	return id, nil
}

// unwrapSecretID unwraps a response-wrapped secret id.
func (s *vaultSession) unwrapSecretID(ctx context.Context, wrappingToken string) (string, error) {
	// Unwrap sends the wrapping token as the client's token when it has none, and keeps it:
	// clear it afterwards so later logins go without a token.
	s.loginClient.ClearToken()
	defer s.loginClient.ClearToken()
	unwrapped, err := s.loginClient.Logical().UnwrapWithContext(ctx, wrappingToken)
	switch {
	case err != nil && vaultSays(err, "wrapping token is not valid"):
		return "", fmt.Errorf("the wrapping token is spent or expired (a wrapping token unwraps once); write a fresh wrapping token to the file: %w", err)
	case err != nil:
		return "", fmt.Errorf("unwrap secret id: %w", err)
	case unwrapped == nil || unwrapped.Data == nil:
		return "", errors.New("unwrap secret id: empty response")
	}
	id, _ := unwrapped.Data["secret_id"].(string)
	if id == "" {
		return "", errors.New("unwrap secret id: the wrapped response holds no secret_id")
	}
	return id, nil
}

// vaultSays reports whether err is Vault refusing a request (HTTP 400) with an error message
// that contains one of texts, compared in lower case.
func vaultSays(err error, texts ...string) bool {
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 {
		return false
	}
	for _, msg := range re.Errors {
		for _, text := range texts {
			if strings.Contains(strings.ToLower(msg), text) {
				return true
			}
		}
	}
	return false
}
