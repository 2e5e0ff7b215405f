package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// The agent authenticates to NATS with an nkey seed file, and refuses to start with a seed the
// server does not know.
func TestNATSNkeySeed(t *testing.T) {
	user, stranger := newNkey(t, nkeys.CreateUser), newNkey(t, nkeys.CreateUser)
	n := harness.StartNATSWith(t, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: user.public}}
	})
	seedFile := writeSecretFile(t, "agent.nk", user.seed)
	n.ClientOptions = []nats.Option{nkeyOption(t, seedFile)}
	v := harness.StartVault(t)

	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.NATS.NkeySeedFile = seedFile
	rotateThroughAuthenticatedNATS(t, v, n, cfg, "nkey", map[string]string{"nkey seed": user.seed})

	refusedAtStart(t, v, n, "Authorization Violation",
		"ROTATION_AGENT_NATS_NKEY_SEED_FILE="+writeSecretFile(t, "stranger.nk", stranger.seed))
}

// The agent authenticates to NATS with a token, and refuses to start with a wrong one.
func TestNATSToken(t *testing.T) {
	const token = "canary-nats-token-8e1f0a7c"
	n := harness.StartNATSWith(t, func(o *server.Options) { o.Authorization = token })
	n.ClientOptions = []nats.Option{nats.Token(token)}
	v := harness.StartVault(t)

	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.NATS.Token = token
	rotateThroughAuthenticatedNATS(t, v, n, cfg, "token", map[string]string{"nats token": token})

	refusedAtStart(t, v, n, "Authorization Violation", "ROTATION_AGENT_NATS_TOKEN=wrong-token-00000000")
}

// The agent reaches a NATS server that requires TLS, trusting the server's CA, and with mutual
// TLS presents its client certificate; a CA that did not sign the server's certificate, or a
// client certificate the server does not trust, stops it at start-up.
func TestNATSTLS(t *testing.T) {
	ca, other := newTestCA(t, "nats-test"), newTestCA(t, "someone-else")
	serverCert, serverKey := ca.Issue(t, "nats-server", true)
	clientCert, clientKey := ca.Issue(t, "rotation-agent", false)
	strangerCert, strangerKey := other.Issue(t, "stranger", false)
	v := harness.StartVault(t)

	for _, mutual := range []bool{false, true} {
		name := map[bool]string{false: "server certificate", true: "mutual"}[mutual]
		t.Run(name, func(t *testing.T) {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: serverCert, KeyFile: serverKey, CaFile: ca.CertFile, Verify: mutual})
			if err != nil {
				t.Fatal(err)
			}
			n := harness.StartNATSWith(t, func(o *server.Options) {
				o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, mutual, tc, 5
			})
			n.ClientOptions = []nats.Option{nats.RootCAs(ca.CertFile)}
			if mutual {
				n.ClientOptions = append(n.ClientOptions, nats.ClientCert(clientCert, clientKey))
			}

			cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
			cfg.NATS.CACert = ca.CertFile
			if mutual {
				cfg.NATS.Cert, cfg.NATS.Key = clientCert, clientKey
			}
			rotateThroughAuthenticatedNATS(t, v, n, cfg, "tls-"+map[bool]string{false: "ca", true: "mutual"}[mutual], nil)

			if !mutual {
				refusedAtStart(t, v, n, "certificate signed by unknown authority", "ROTATION_AGENT_NATS_CA_CERT="+other.CertFile)
				return
			}
			// Go's TLS client offers no certificate the server's CA did not sign. With TLS 1.3 the
			// server's alert may or may not reach the client before the connection closes.
			refusedAtStart(t, v, n, "tls: certificate required|it may require a client certificate", "ROTATION_AGENT_NATS_CA_CERT="+ca.CertFile,
				"ROTATION_AGENT_NATS_CERT="+strangerCert, "ROTATION_AGENT_NATS_KEY="+strangerKey)
		})
	}
}

// In operator (JWT) mode the agent authenticates with a credentials file holding a user JWT and
// its nkey seed, uses JetStream in its account, and refuses to start with credentials of an
// account the server does not trust.
func TestNATSCredsFileOperatorMode(t *testing.T) {
	operator, account, user := newNkey(t, nkeys.CreateOperator), newNkey(t, nkeys.CreateAccount), newNkey(t, nkeys.CreateUser)
	// JetStream in operator mode needs the server's system account.
	system := newNkey(t, nkeys.CreateAccount)
	opClaims := jwt.NewOperatorClaims(operator.public)
	opClaims.Name, opClaims.SystemAccount = "test-operator", system.public
	opJWT, err := opClaims.Encode(operator.kp)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	accClaims := jwt.NewAccountClaims(account.public)
	accClaims.Name = "rotation"
	accClaims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit}
	accJWT, err := accClaims.Encode(operator.kp)
	if err != nil {
		t.Fatal(err)
	}
	sysClaims := jwt.NewAccountClaims(system.public)
	sysClaims.Name = "SYS"
	sysJWT, err := sysClaims.Encode(operator.kp)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	for pub, claims := range map[string]string{account.public: accJWT, system.public: sysJWT} {
		if err := resolver.Store(pub, claims); err != nil {
			t.Fatal(err)
		}
	}
	n := harness.StartNATSWith(t, func(o *server.Options) {
		o.TrustedOperators, o.AccountResolver, o.SystemAccount = []*jwt.OperatorClaims{trusted}, resolver, system.public
	})
	credsFile := writeCreds(t, "agent.creds", user, account)
	n.ClientOptions = []nats.Option{nats.UserCredentials(credsFile)}
	v := harness.StartVault(t)

	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.NATS.CredsFile = credsFile
	rotateThroughAuthenticatedNATS(t, v, n, cfg, "creds", map[string]string{"user seed": user.seed, "account seed": account.seed})

	// A user of an account the server does not know (not signed by its operator).
	rogue := newNkey(t, nkeys.CreateAccount)
	refusedAtStart(t, v, n, "Authorization Violation",
		"ROTATION_AGENT_NATS_CREDS_FILE="+writeCreds(t, "rogue.creds", newNkey(t, nkeys.CreateUser), rogue))
}

// rotateThroughAuthenticatedNATS runs the agent with cfg against n, publishes a change naming a
// KV secret and checks what a user would: the agent started, Vault holds a new version with a
// new value, the evidence arrived, and none of secrets reached the agent's log or the bus.
func rotateThroughAuthenticatedNATS(t *testing.T, v *harness.Vault, n *harness.NATS, cfg agent.Config, name string, secrets map[string]string) {
	t.Helper()
	path := "natsauth/" + name
	old := "canary-natsauth-" + name + "-0001"
	v.PutKV(t, path, map[string]any{"password": old})
	ra := harness.StartAgent(t, cfg)
	bus := harness.WatchBus(t, n)
	changeID := "CHG-NATSAUTH-" + name
	bus.Publish(t, harness.ChangeEvent(t, changeID, kvRef(path)), "")
	ev := bus.WaitEvidence(t, changeID, waitEvidence)
	ra.Stop(t)
	if ev.Data.Status != events.StatusReconciled || len(ev.Data.Credentials) != 1 || ev.Data.Credentials[0].After["version"] != "2" {
		t.Fatalf("evidence: %+v", ev.Data)
	}
	current := v.KV(t, path, 0)
	if current.VersionMetadata.Version != 2 || current.Data["password"] == old {
		t.Errorf("secret not rotated: version %d", current.VersionMetadata.Version)
	}
	if secrets == nil {
		secrets = map[string]string{}
	}
	secrets["old secret value"] = old
	if s, ok := current.Data["password"].(string); ok {
		secrets["new secret value"] = s
	}
	assertNoLeak(t, secrets, map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}

// refusedAtStart runs the agent as a process against n with extra settings (a wrong
// credential) and checks it exits 1 with one error line mentioning want.
func refusedAtStart(t *testing.T, v *harness.Vault, n *harness.NATS, want string, extra ...string) {
	t.Helper()
	p := harness.StartProcess(t, agentBinary, processEnv(v, v.AgentToken(t), n, extra...))
	if code := p.Wait(t, 30*time.Second); code != 1 {
		t.Errorf("exit %d, want 1; output:\n%s", code, p.Output.String())
	}
	assertOneErrorLine(t, p.Output.String(), want)
}

// nkey is a generated key pair with its public key and seed as text.
type nkey struct {
	kp     nkeys.KeyPair
	public string
	seed   string
}

func newNkey(t *testing.T, create func() (nkeys.KeyPair, error)) nkey {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	public, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return nkey{kp: kp, public: public, seed: string(seed)}
}

// writeCreds writes a credentials file for user, whose JWT account signs.
func writeCreds(t *testing.T, name string, user, account nkey) string {
	t.Helper()
	claims := jwt.NewUserClaims(user.public)
	claims.Name = "rotation-agent"
	userJWT, err := claims.Encode(account.kp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, []byte(user.seed))
	if err != nil {
		t.Fatal(err)
	}
	return writeSecretFile(t, name, string(creds))
}

func writeSecretFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func nkeyOption(t *testing.T, seedFile string) nats.Option {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}
