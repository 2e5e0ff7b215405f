package rotators

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
)

// Credential options that choose how new values are generated.
const (
	// OptionPasswordPolicy names a Vault password policy (sys/policies/password/NAME).
	OptionPasswordPolicy = "password_policy"
	// OptionLength and OptionCharset override the agent's default generation policy.
	OptionLength  = "length"
	OptionCharset = "charset"
)

// policyName is what a Vault password policy may be called here; nothing that changes the path.
var policyName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Generator makes new secret values: through a Vault password policy when the credential
// names one, otherwise from a length and a character set.
type Generator struct {
	// Client reads Vault password policies.
	Client *vault.Client
	// Length and Charset are the defaults.
	Length  int
	Charset string
}

// For returns the generation function for one credential.
func (g Generator) For(ref events.CredentialRef) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if name := ref.Options[OptionPasswordPolicy]; name != "" {
			if !policyName.MatchString(name) {
				return "", Permanent(fmt.Errorf("option %s=%q is not a policy name", OptionPasswordPolicy, name))
			}
			s, err := g.Client.Logical().ReadWithContext(ctx, "sys/policies/password/"+name+"/generate")
			if err != nil {
				if IsRetryable(err) {
					return "", Retryable(fmt.Errorf("password policy %q: %w", name, err))
				}
				return "", Permanent(fmt.Errorf("password policy %q: %w", name, err))
			}
			if s == nil {
				return "", Permanent(fmt.Errorf("password policy %q does not exist", name))
			}
			pw, _ := s.Data["password"].(string)
			if pw == "" {
				return "", Permanent(fmt.Errorf("password policy %q generated nothing", name))
			}
			return pw, nil
		}
		length, charset := g.Length, g.Charset
		if v := ref.Options[OptionLength]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 16 || n > 1024 {
				return "", Permanent(fmt.Errorf("option %s=%q: want a number from 16 to 1024", OptionLength, v))
			}
			length = n
		}
		if v := ref.Options[OptionCharset]; v != "" {
			charset = v
		}
		v, err := GeneratePassword(length, charset)
		if err != nil {
			return "", Permanent(err)
		}
		return v, nil
	}
}

// GeneratePassword returns a value of length characters drawn uniformly from charset with a
// cryptographic random source.
func GeneratePassword(length int, charset string) (string, error) {
	chars := []rune(charset)
	if length <= 0 || len(chars) < 2 {
		return "", errors.New("password policy needs a positive length and at least two characters")
	}
	max := big.NewInt(int64(len(chars)))
	out := make([]rune, length)
	for i := range out {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		out[i] = chars[n.Int64()]
	}
	return string(out), nil
}
