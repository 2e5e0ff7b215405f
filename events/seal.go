package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SignatureAlgorithm is the only signature algorithm evidence records use.
const SignatureAlgorithm = "ed25519"

// GenesisHash is the previous-record hash of the first record in an agent's chain.
var GenesisHash = strings.Repeat("0", 64)

// ChainLink places a record in its agent's hash chain.
type ChainLink struct {
	// Sequence is 1 for an agent's first record and grows by one with each record.
	Sequence uint64 `json:"sequence"`
	// PreviousSHA256 is the SHA-256, in lower-case hex, of the agent's previous record exactly
	// as published (RecordHash); GenesisHash for the first record.
	PreviousSHA256 string `json:"previous_sha256"`
}

// Signature is the signature of a record and the key that made it.
type Signature struct {
	Algorithm string `json:"algorithm"`
	// KeyID names the key: transit:<mount>/<key> or file:<first 16 hex digits of the SHA-256
	// of the public key>.
	KeyID string `json:"key_id"`
	// KeyVersion is the version of the key (transit key version; 1 for a key file).
	KeyVersion int `json:"key_version"`
	// Value is the Ed25519 signature, standard base64 with padding.
	Value string `json:"value"`
}

// Record is a sealed evidence record: the envelope as published.
type Record = Envelope[Evidence]

// Canonical is the one byte form of a record: compact JSON as encoding/json marshals the Go
// types. Published records are exactly this form, which lets a verifier detect any edit.
func Canonical(r Record) ([]byte, error) {
	return json.Marshal(r)
}

// SigningBytes is what a record's signature signs: the canonical form of the record with its
// signature removed (chain link included).
func SigningBytes(r Record) ([]byte, error) {
	r.Data.Signature = nil
	return Canonical(r)
}

// RecordHash is the SHA-256, in lower-case hex, of a record's published bytes; the next record
// of the same agent carries it as its previous hash.
func RecordHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// ErrNotCanonical means a record's bytes are not the canonical form of what they decode to:
// something was edited (a key's case, white space, an escape, a number's spelling).
var ErrNotCanonical = errors.New("record is not in canonical form")

// DecodeRecord decodes one published record strictly: unknown fields and trailing data are
// refused, and the bytes must be exactly the canonical form of the decoded record, so that an
// edit of any byte either fails here or changes what the signature covers.
func DecodeRecord(line []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("decode record: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return r, errors.New("decode record: data after the record")
	}
	again, err := Canonical(r)
	if err != nil {
		return r, fmt.Errorf("re-encode record: %w", err)
	}
	if !bytes.Equal(again, line) {
		return r, ErrNotCanonical
	}
	return r, nil
}
