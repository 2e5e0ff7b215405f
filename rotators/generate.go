package rotators

import (
	"crypto/rand"
	"errors"
	"math/big"
)

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
