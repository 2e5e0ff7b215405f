package rotators

import (
	"strings"
	"testing"
	"unicode/utf8"
)

const defaultCharset = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

func TestGeneratePassword(t *testing.T) {
	tests := []struct {
		name    string
		length  int
		charset string
	}{
		{"one char", 1, "ab"},
		{"default policy", 32, defaultCharset},
		{"minimum config length", 16, "0123456789"},
		{"long", 1024, defaultCharset},
		{"multibyte charset", 40, "äöüß€¥αβγδ"},
		{"two characters", 64, "01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := GeneratePassword(tc.length, tc.charset)
			if err != nil {
				t.Fatalf("GeneratePassword(%d, %q): %v", tc.length, tc.charset, err)
			}
			if n := utf8.RuneCountInString(v); n != tc.length {
				t.Errorf("got %d characters, want %d: %q", n, tc.length, v)
			}
			for _, r := range v {
				if !strings.ContainsRune(tc.charset, r) {
					t.Fatalf("character %q is not in the charset %q", r, tc.charset)
				}
			}
		})
	}
}

func TestGeneratePasswordValuesDiffer(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		v, err := GeneratePassword(32, defaultCharset)
		if err != nil {
			t.Fatal(err)
		}
		if seen[v] {
			t.Fatalf("value %q generated twice", v)
		}
		seen[v] = true
	}
}

func TestGeneratePasswordRejectsBadPolicy(t *testing.T) {
	tests := []struct {
		name    string
		length  int
		charset string
	}{
		{"zero length", 0, defaultCharset},
		{"negative length", -5, defaultCharset},
		{"empty charset", 32, ""},
		{"one character", 32, "a"},
		{"one multibyte character", 32, "€"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := GeneratePassword(tc.length, tc.charset)
			if err == nil {
				t.Fatalf("GeneratePassword(%d, %q) = %q, want an error", tc.length, tc.charset, v)
			}
			if v != "" {
				t.Errorf("a value %q came back with the error", v)
			}
		})
	}
}

func TestGeneratePasswordRoughlyUniform(t *testing.T) {
	const charset = "0123456789abcdef"
	const perChar = 2000
	counts := map[rune]int{}
	total := 0
	for total < perChar*len(charset) {
		v, err := GeneratePassword(256, charset)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range v {
			counts[r]++
			total++
		}
	}
	expected := float64(total) / float64(len(charset))
	for _, r := range charset {
		// The standard deviation of each count is about 43; 20% is about 9 of them.
		if c := float64(counts[r]); c < 0.8*expected || c > 1.2*expected {
			t.Errorf("character %q drawn %v times, expected about %.0f", r, c, expected)
		}
	}
	if len(counts) != len(charset) {
		t.Errorf("%d distinct characters drawn, want %d", len(counts), len(charset))
	}
}
