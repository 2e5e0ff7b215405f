package delivery

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIBszCC\n-----END CERTIFICATE-----"

func TestRenderFormats(t *testing.T) {
	values := map[string]string{"username": "app", "password": "s3cr3t-va'l ue", "certificate": testPEM, "private_key": "-----BEGIN PRIVATE KEY-----\nMC4CAQAB\n-----END PRIVATE KEY-----\n"}
	tests := []struct {
		name string
		sink Sink
		want string
	}{
		{"raw", Sink{Format: FormatRaw, Fields: []Field{{From: "password"}}}, "s3cr3t-va'l ue"},
		{"env quotes what a shell would split", Sink{Format: FormatEnv, Fields: []Field{{From: "username", As: "DB_USER"}, {From: "password", As: "DB_PASSWORD"}}},
			"DB_USER=app\nDB_PASSWORD='s3cr3t-va'\\''l ue'\n"},
		{"pem bundle in order", Sink{Format: FormatPEM, Fields: []Field{{From: "certificate"}, {From: "private_key"}}},
			testPEM + "\n-----BEGIN PRIVATE KEY-----\nMC4CAQAB\n-----END PRIVATE KEY-----\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sink.Render(values)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	got, err := Sink{Format: FormatJSON, Fields: []Field{{From: "username"}, {From: "password", As: "pw"}}}.Render(values)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]string
	if err := json.Unmarshal(got, &obj); err != nil || obj["username"] != "app" || obj["pw"] != values["password"] || len(obj) != 2 {
		t.Errorf("json sink = %s (%v)", got, err)
	}
}

func TestRenderErrorsNameTheFieldNotTheValue(t *testing.T) {
	values := map[string]string{"password": "canary-value-123"}
	for _, s := range []Sink{
		{Path: "/run/a", Format: FormatEnv, Fields: []Field{{From: "user"}}},
		{Path: "/run/a", Format: FormatPEM, Fields: []Field{{From: "password"}}},
	} {
		_, err := s.Render(values)
		if err == nil {
			t.Fatalf("%s sink rendered without its field", s.Format)
		}
		if strings.Contains(err.Error(), "canary-value-123") {
			t.Errorf("error carries the value: %v", err)
		}
	}
}

// The file is replaced whole, with mode 0600 whatever the umask, and no temporary file stays.
func TestWriteIsAtomicWithMode0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.env")
	if err := os.WriteFile(path, []byte("OLD=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	s := Sink{Path: path, Format: FormatEnv, UID: -1, GID: -1}
	if err := s.Write([]byte("NEW=2\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	info, _ := os.Stat(path)
	if string(got) != "NEW=2\n" || info.Mode().Perm() != 0o600 {
		t.Errorf("file = %q mode %v, want the new content with mode 0600", got, info.Mode().Perm())
	}
	if os.SameFile(before, info) {
		t.Error("the file was rewritten in place; a reader could see a partial file")
	}
	if err := s.WriteVersion("rd-1"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d files, want db.env and db.env.version only", len(entries))
	}
	v, _ := os.ReadFile(VersionPath(path))
	if string(v) != "rd-1\n" {
		t.Errorf("version file = %q", v)
	}
}

func TestWriteFailsWithoutLeavingTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := Sink{Path: filepath.Join(dir, "missing", "db.env"), UID: -1, GID: -1}
	if err := s.Write([]byte("x")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	// An owner the agent may not give (root unless it runs as root) fails before rename.
	if os.Geteuid() != 0 {
		s = Sink{Path: filepath.Join(dir, "db.env"), UID: 0, GID: 0}
		if err := s.Write([]byte("x")); err == nil {
			t.Fatal("chown to root succeeded for a non-root process")
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("a failed write left %d files", len(entries))
		}
	}
}

func TestParseSinks(t *testing.T) {
	good := `version: 1
sinks:
  - credential: kv-v2:secret/payments/db
    path: /run/app/db.env
    format: env
    fields: [{from: password, as: DB_PASSWORD}]
  - credential: pki:pki/web
    path: /run/app/tls.pem
    format: pem
    mode: "0640"
    uid: 1000
    fields: [{from: certificate}, {from: private_key}]
`
	sinks, err := ParseSinks("sinks.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(sinks) != 2 || sinks[0].Mode != 0 || sinks[1].Mode != 0o640 || sinks[1].UID != 1000 || sinks[1].GID != -1 {
		t.Errorf("sinks = %+v", sinks)
	}
	bad := `version: 1
sinks:
  - credential: kv-v2:secret/a
    path: relative/file
    format: xml
    mode: "0644"
    fields: [{from: password, as: "bad name"}]
  - path: /run/app/x
    format: raw
    fields: [{from: a}, {from: b}]
`
	_, err = ParseSinks("sinks.yaml", []byte(bad))
	if err == nil {
		t.Fatal("bad sinks file accepted")
	}
	for _, want := range []string{"must be absolute", `format "xml"`, "readable by others", "credential is required", "exactly one field"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems %q do not mention %q", err, want)
		}
	}
	if _, err := ParseSinks("s", []byte("version: 1\nsinks: []\nextra: 1\n")); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestTokenIsStableAndDistinct(t *testing.T) {
	a := Token("CHG1", "kv-v2:secret/a", map[string]string{"version": "4", "created_time": "x"})
	b := Token("CHG1", "kv-v2:secret/a", map[string]string{"created_time": "x", "version": "4"})
	c := Token("CHG1", "kv-v2:secret/a", map[string]string{"version": "5", "created_time": "x"})
	if a != b || a == c || !strings.HasPrefix(a, "rd-") {
		t.Errorf("tokens %s %s %s", a, b, c)
	}
}
