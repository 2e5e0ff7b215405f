package transit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// probeMode is how a key version is exercised.
type probeMode int

const (
	// modeEncrypt encrypts and decrypts.
	modeEncrypt probeMode = iota
	// modeSign signs and verifies the signature.
	modeSign
	// modeHMAC computes and verifies an HMAC: every key type supports it.
	modeHMAC
)

// probe exercises one version of a key with a random throwaway test value. The value protects
// nothing, so it is not a secret; it still never appears in errors.
type probe struct {
	r     *Rotator
	k     key
	mode  probeMode
	input string // base64
	// context is the derivation context of a derived key (base64), empty otherwise.
	context string
}

// newProbe picks how to exercise the key: encryption when it supports it, otherwise signing,
// otherwise an HMAC.
func newProbe(r *Rotator, k key, info *keyInfo) *probe {
	p := &probe{r: r, k: k, mode: modeHMAC, input: randomBase64(32)}
	switch {
	case info.supportsEncryption && info.supportsDecryption:
		p.mode = modeEncrypt
	case info.supportsSigning:
		p.mode = modeSign
	}
	if info.derived {
		p.context = randomBase64(16)
	}
	return p
}

// restoreProbe returns the probe recorded in st by an earlier attempt, or a new one.
func restoreProbe(r *Rotator, k key, info *keyInfo, st *rotators.State) *probe {
	p := newProbe(r, k, info)
	if in := st.Note(noteProbeInput); in != "" {
		p.input, p.context = in, st.Note(noteProbeContext)
	}
	return p
}

// record keeps the probe and a token it made in st, so a resumed step can check the token again.
func (p *probe) record(st *rotators.State, tok string) {
	st.SetNote(noteOldProbe, tok)
	st.SetNote(noteProbeInput, p.input)
	st.SetNote(noteProbeContext, p.context)
}

// token names what the probe makes.
func (p *probe) token() string {
	return [...]string{"ciphertext", "signature", "HMAC"}[p.mode]
}

// describe says in plain words what the probe does.
func (p *probe) describe() string {
	return [...]string{
		"encrypt a random test value with it and decrypt it back",
		"sign a random test value with it and verify the signature",
		"compute an HMAC of a random test value with it and verify it",
	}[p.mode]
}

// make encrypts, signs or HMACs the test value with key version v and checks the result names
// that version. When Vault refuses (400: a version it no longer loads or may not use), it
// returns Vault's reason and no token.
func (p *probe) make(ctx context.Context, v int) (tok, refused string, err error) {
	data := map[string]any{"key_version": v}
	var path, field string
	switch p.mode {
	case modeEncrypt:
		path, field = "encrypt", "ciphertext"
		data["plaintext"] = p.input
	case modeSign:
		path, field = "sign", "signature"
		data["input"] = p.input
	case modeHMAC:
		path, field = "hmac", "hmac"
		data["input"] = p.input
	}
	if p.context != "" {
		data["context"] = p.context
	}
	s, err := p.r.client.Logical().WriteWithContext(ctx, p.k.mount+"/"+path+"/"+p.k.name, data)
	if err != nil {
		if reason, ok := badRequest(err); ok {
			return "", reason, nil
		}
		return "", "", vaultcall.Classify(fmt.Sprintf("make a test %s with version %d of %s", p.token(), v, p.k), err)
	}
	if s != nil && s.Data != nil {
		tok, _ = s.Data[field].(string)
	}
	if prefix := fmt.Sprintf("vault:v%d:", v); !strings.HasPrefix(tok, prefix) {
		got, _, _ := strings.Cut(strings.TrimPrefix(tok, "vault:"), ":")
		return "", "", rotators.Retryable(fmt.Errorf("%w: %s: the test %s was made with key version %q, not %q", errVerify, p.k, p.token(), got, fmt.Sprintf("v%d", v)))
	}
	return tok, "", nil
}

// badRequest returns Vault's reason when err is a 400 answer: Vault refused the request itself.
func badRequest(err error) (string, bool) {
	var re *vault.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		return strings.Join(re.Errors, "; "), true
	}
	return "", false
}

// check decrypts or verifies tok. It reports whether Vault accepted it and, when Vault refused
// it, Vault's reason. Errors are reserved for failures that say nothing about the key version.
func (p *probe) check(ctx context.Context, tok string) (bool, string, error) {
	data := map[string]any{}
	var path string
	switch p.mode {
	case modeEncrypt:
		path = "decrypt"
		data["ciphertext"] = tok
	case modeSign:
		path = "verify"
		data["input"], data["signature"] = p.input, tok
	case modeHMAC:
		path = "verify"
		data["input"], data["hmac"] = p.input, tok
	}
	if p.context != "" {
		data["context"] = p.context
	}
	s, err := p.r.client.Logical().WriteWithContext(ctx, p.k.mount+"/"+path+"/"+p.k.name, data)
	if err != nil {
		if reason, ok := badRequest(err); ok {
			return false, reason, nil
		}
		return false, "", vaultcall.Classify(fmt.Sprintf("check a test %s with %s", p.token(), p.k), err)
	}
	if s == nil || s.Data == nil {
		return false, "empty response", nil
	}
	if p.mode == modeEncrypt {
		if got, _ := s.Data["plaintext"].(string); got != p.input {
			return false, "decrypted to a different value", nil
		}
		return true, "", nil
	}
	if valid, _ := s.Data["valid"].(bool); !valid {
		return false, "not valid", nil
	}
	return true, "", nil
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return base64.StdEncoding.EncodeToString(b)
}
