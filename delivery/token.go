package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
)

// Token names one delivery of a credential: the same change, credential and new fingerprint
// always give the same token, so a resumed delivery reports the same one. It is derived from
// non-secret data only.
func Token(changeID, credential string, after map[string]string) string {
	keys := make([]string, 0, len(after))
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, part := range append([]string{changeID, credential}, keys...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
		if v, ok := after[part]; ok {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
	}
	return "rd-" + hex.EncodeToString(h.Sum(nil)[:12])
}
