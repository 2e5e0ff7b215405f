package agent

import "strings"

// oneLineError presents an error on a single line (Vault's API errors span several) while
// keeping the chain for errors.Is and errors.As.
type oneLineError struct{ err error }

func (e oneLineError) Error() string {
	return strings.Join(strings.Fields(strings.ReplaceAll(e.err.Error(), "* ", "")), " ")
}

func (e oneLineError) Unwrap() error { return e.err }

// singleLine wraps err so that it prints on one line.
func singleLine(err error) error {
	if err == nil {
		return nil
	}
	return oneLineError{err}
}
