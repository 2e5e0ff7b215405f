package rotators

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
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

func TestGeneratorForOptions(t *testing.T) {
	g := Generator{Length: 32, Charset: defaultCharset}
	tests := []struct {
		name        string
		options     map[string]string
		wantLength  int
		wantCharset string
	}{
		{"defaults", nil, 32, defaultCharset},
		{"empty options", map[string]string{}, 32, defaultCharset},
		{"length", map[string]string{OptionLength: "20"}, 20, defaultCharset},
		{"minimum length", map[string]string{OptionLength: "16"}, 16, defaultCharset},
		{"maximum length", map[string]string{OptionLength: "1024"}, 1024, defaultCharset},
		{"charset", map[string]string{OptionCharset: "01"}, 32, "01"},
		{"length and charset", map[string]string{OptionLength: "48", OptionCharset: "xyz"}, 48, "xyz"},
		{"empty values keep defaults", map[string]string{OptionLength: "", OptionCharset: ""}, 32, defaultCharset},
		{"unrelated option", map[string]string{"retire": "delete"}, 32, defaultCharset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gen := g.For(events.CredentialRef{Kind: "kv-v2", Options: tc.options})
			v, err := gen(context.Background())
			if err != nil {
				t.Fatalf("generate: %v", err)
			}
			if n := utf8.RuneCountInString(v); n != tc.wantLength {
				t.Errorf("got %d characters, want %d", n, tc.wantLength)
			}
			for _, r := range v {
				if !strings.ContainsRune(tc.wantCharset, r) {
					t.Fatalf("character %q is not in %q", r, tc.wantCharset)
				}
			}
			if again, _ := gen(context.Background()); again == v && tc.wantLength >= 16 && len(tc.wantCharset) > 2 {
				t.Errorf("two calls returned the same value %q", v)
			}
		})
	}
}

func TestGeneratorForBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		g       Generator
		options map[string]string
		wantMsg string
	}{
		{"length not a number", Generator{Length: 32, Charset: defaultCharset}, map[string]string{OptionLength: "long"}, "length"},
		{"length too short", Generator{Length: 32, Charset: defaultCharset}, map[string]string{OptionLength: "15"}, "length"},
		{"length too long", Generator{Length: 32, Charset: defaultCharset}, map[string]string{OptionLength: "1025"}, "length"},
		{"negative length", Generator{Length: 32, Charset: defaultCharset}, map[string]string{OptionLength: "-32"}, "length"},
		{"length with spaces", Generator{Length: 32, Charset: defaultCharset}, map[string]string{OptionLength: " 32"}, "length"},
		{"one-character charset", Generator{Length: 32, Charset: defaultCharset}, map[string]string{OptionCharset: "a"}, "two characters"},
		{"no default length", Generator{Charset: defaultCharset}, nil, "positive length"},
		{"no default charset", Generator{Length: 32}, nil, "two characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.g.For(events.CredentialRef{Options: tc.options})(context.Background())
			if err == nil {
				t.Fatalf("generate = %q, want an error", v)
			}
			if IsRetryable(err) {
				t.Errorf("error %v is retryable; a bad option never gets better", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q lacks %q", err, tc.wantMsg)
			}
			if v != "" {
				t.Errorf("a value %q came back with the error", v)
			}
		})
	}
}

// fakePolicyVault serves sys/policies/password/NAME/generate.
type fakePolicyVault struct {
	t        *testing.T
	mu       sync.Mutex
	requests []string
	// answer writes the response for a policy name.
	answer func(w http.ResponseWriter, name string)
}

func (f *fakePolicyVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if r.Header.Get("X-Vault-Token") != "test-token" {
		f.t.Errorf("%s %s without the client token", r.Method, r.URL.Path)
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/sys/policies/password/")
	name, ok2 := strings.CutSuffix(name, "/generate")
	if r.Method != http.MethodGet || !ok || !ok2 {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	f.answer(w, name)
}

func policyVault(t *testing.T, answer func(w http.ResponseWriter, name string)) (*fakePolicyVault, *vault.Client) {
	t.Helper()
	f := &fakePolicyVault{t: t, answer: answer}
	return f, vaultfake.Client(t, f, "test-token")
}

func answerJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestGeneratorForPasswordPolicy(t *testing.T) {
	f, client := policyVault(t, func(w http.ResponseWriter, name string) {
		answerJSON(w, http.StatusOK, map[string]any{"request_id": "r", "data": map[string]any{"password": "from-policy-" + name}})
	})
	g := Generator{Client: client, Length: 32, Charset: defaultCharset}
	// The policy wins over length and charset options.
	ref := events.CredentialRef{Options: map[string]string{OptionPasswordPolicy: "db-strong", OptionLength: "64", OptionCharset: "01"}}
	v, err := g.For(ref)(context.Background())
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if v != "from-policy-db-strong" {
		t.Errorf("generate = %q, want the policy's password", v)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := []string{"GET /v1/sys/policies/password/db-strong/generate"}; len(f.requests) != 1 || f.requests[0] != want[0] {
		t.Errorf("requests = %q, want %q", f.requests, want)
	}
}

func TestGeneratorForPasswordPolicyErrors(t *testing.T) {
	tests := []struct {
		name          string
		answer        func(w http.ResponseWriter)
		wantRetryable bool
		wantMsg       string
	}{
		{"404 no such policy", func(w http.ResponseWriter) { answerJSON(w, 404, map[string]any{"errors": []string{}}) }, false, "does not exist"},
		{"404 with an error", func(w http.ResponseWriter) {
			answerJSON(w, 404, map[string]any{"errors": []string{"policy not found"}})
		}, false, "does not exist"},
		{"no password in the answer", func(w http.ResponseWriter) { answerJSON(w, 200, map[string]any{"data": map[string]any{}}) }, false, "generated nothing"},
		{"no data in the answer", func(w http.ResponseWriter) { answerJSON(w, 200, map[string]any{"request_id": "r"}) }, false, "generated nothing"},
		{"empty password", func(w http.ResponseWriter) {
			answerJSON(w, 200, map[string]any{"data": map[string]any{"password": ""}})
		}, false, "generated nothing"},
		{"403 permission denied", func(w http.ResponseWriter) {
			answerJSON(w, 403, map[string]any{"errors": []string{"permission denied"}})
		}, false, "permission denied"},
		{"503 sealed", func(w http.ResponseWriter) { answerJSON(w, 503, map[string]any{"errors": []string{"Vault is sealed"}}) }, true, "503"},
		{"500", func(w http.ResponseWriter) { answerJSON(w, 500, map[string]any{"errors": []string{"internal error"}}) }, true, "500"},
		{"429", func(w http.ResponseWriter) { answerJSON(w, 429, map[string]any{"errors": []string{"rate limited"}}) }, true, "429"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, client := policyVault(t, func(w http.ResponseWriter, _ string) { tc.answer(w) })
			g := Generator{Client: client, Length: 32, Charset: defaultCharset}
			v, err := g.For(events.CredentialRef{Options: map[string]string{OptionPasswordPolicy: "db-strong"}})(context.Background())
			if err == nil {
				t.Fatalf("generate = %q, want an error", v)
			}
			if got := IsRetryable(err); got != tc.wantRetryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
			}
			for _, s := range []string{`password policy "db-strong"`, tc.wantMsg} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if v != "" {
				t.Errorf("a value %q came back with the error", v)
			}
		})
	}
}

func TestGeneratorForPasswordPolicyUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	conf := vault.DefaultConfig()
	conf.Address = addr
	conf.MaxRetries = 0
	client, err := vault.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Generator{Client: client}.For(events.CredentialRef{Options: map[string]string{OptionPasswordPolicy: "p"}})(context.Background())
	if err == nil || !IsRetryable(err) {
		t.Fatalf("generate with Vault down = %v, want a retryable error", err)
	}
}
