package kvv2

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// maxRecordedWrites bounds the write hashes kept in one round's state.
const maxRecordedWrites = 16

// recordWrite adds the salted hash of the rotated fields of data to the state before they are
// written. The hash reveals nothing of the values (they are random and the salt is random).
func recordWrite(st *rotators.State, data map[string]any) error {
	if st.Note(noteSalt) == "" {
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return fmt.Errorf("salt: %w", err)
		}
		st.SetNote(noteSalt, hex.EncodeToString(salt))
	}
	hashes := splitNonEmpty(st.Note(noteWrites))
	if h := writeHash(st, data); !slices.Contains(hashes, h) {
		hashes = append(hashes, h)
	}
	if len(hashes) > maxRecordedWrites {
		hashes = hashes[len(hashes)-maxRecordedWrites:]
	}
	st.SetNote(noteWrites, strings.Join(hashes, ","))
	return nil
}

// wroteThis reports whether data's rotated fields are a value set some attempt recorded.
func wroteThis(st *rotators.State, data map[string]any) bool {
	return slices.Contains(splitNonEmpty(st.Note(noteWrites)), writeHash(st, data))
}

// writeHash is the salted SHA-256 of the rotated fields of data, in field order.
func writeHash(st *rotators.State, data map[string]any) string {
	h := sha256.New()
	h.Write([]byte(st.Note(noteSalt)))
	for _, f := range strings.Split(st.Note(noteFields), ",") {
		fmt.Fprintf(h, "\x00%s\x00%v", f, data[f])
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
