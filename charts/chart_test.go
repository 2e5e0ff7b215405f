// Package charts tests the Helm chart in charts/rotation-agent: helm lint, and helm template
// with assertions on the rendered objects for the default values and for each set of values in
// testdata/. helm comes from `make helm` (bin/helm, or $HELM).
package charts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/discovery"
)

const chartDir = "rotation-agent"

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm returns the helm binary: $HELM, else bin/helm, installed with `make helm` when missing.
// A missing helm fails the test; it is never skipped.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		if p := os.Getenv("HELM"); p != "" {
			helmPath = p
			return
		}
		root, err := filepath.Abs("..")
		if err != nil {
			helmErr = err
			return
		}
		helmPath = filepath.Join(root, "bin", "helm")
		if _, err := os.Stat(helmPath); err == nil {
			return
		}
		out, err := exec.Command("make", "-C", root, "helm").CombinedOutput()
		if err != nil {
			helmErr = fmt.Errorf("`make helm` failed (it installs helm into bin/ from the Go module proxy): %w\n%s", err, out)
		}
	})
	if helmErr != nil {
		t.Fatalf("helm is needed for the chart tests: %v", helmErr)
	}
	return helmPath
}

// runHelm runs helm with args and returns its standard output, or its error with standard error.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// The objects the tests look into, with the fields they check.
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		AutomountServiceAccountToken *bool             `yaml:"automountServiceAccountToken"`
		Data                         map[string]string `yaml:"data"`
		raw                          yaml.Node
	}
	deploymentSpec struct {
		Spec struct {
			Replicas int `yaml:"replicas"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata struct {
					Labels map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpec struct {
		ServiceAccountName            string `yaml:"serviceAccountName"`
		AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
		TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
			RunAsUser      int64 `yaml:"runAsUser"`
			SeccompProfile struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		Containers []container `yaml:"containers"`
		Volumes    []volume    `yaml:"volumes"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []envVar `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe   probe `yaml:"livenessProbe"`
		ReadinessProbe  probe `yaml:"readinessProbe"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			Privileged               *bool `yaml:"privileged"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Projected *struct {
			Sources []struct {
				ServiceAccountToken *struct {
					Path     string `yaml:"path"`
					Audience string `yaml:"audience"`
				} `yaml:"serviceAccountToken"`
			} `yaml:"sources"`
		} `yaml:"projected"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	}
	serviceMonitorSpec struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
)

// rendered is the output of helm template, by kind.
type rendered map[string][]object

// render runs helm template with the given values files and --set flags.
func render(t *testing.T, valuesFiles []string, sets ...string) (rendered, error) {
	t.Helper()
	args := []string{"template", "rel", chartDir, "--namespace", "payments"}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := runHelm(t, args...)
	if err != nil {
		return nil, err
	}
	objs := rendered{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, out)
		}
		var o object
		if err := node.Decode(&o); err != nil {
			t.Fatalf("rendered object: %v", err)
		}
		if o.Kind == "" {
			continue // an empty document
		}
		o.raw = node
		objs[o.Kind] = append(objs[o.Kind], o)
	}
	return objs, nil
}

func mustRender(t *testing.T, valuesFiles []string, sets ...string) rendered {
	t.Helper()
	objs, err := render(t, valuesFiles, sets...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// one returns the only object of kind, failing the test when there is not exactly one.
func (r rendered) one(t *testing.T, kind string) object {
	t.Helper()
	if len(r[kind]) != 1 {
		t.Fatalf("%d objects of kind %s rendered, want 1", len(r[kind]), kind)
	}
	return r[kind][0]
}

func (r rendered) deployment(t *testing.T) (deploymentSpec, container) {
	t.Helper()
	var d deploymentSpec
	node := r.one(t, "Deployment").raw
	if err := node.Decode(&d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "rotation-agent" {
			return d, c
		}
	}
	t.Fatalf("deployment has no rotation-agent container")
	return d, container{}
}

func (c container) env() map[string]envVar {
	m := map[string]envVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

// mountOf returns the mount path of the volume the pod takes from secret or config map name.
func mountOf(t *testing.T, pod podSpec, c container, name string) string {
	t.Helper()
	for _, v := range pod.Volumes {
		if (v.Secret != nil && v.Secret.SecretName == name) || (v.ConfigMap != nil && v.ConfigMap.Name == name) {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name {
					if !m.ReadOnly {
						t.Errorf("volume %s is mounted writable", v.Name)
					}
					return m.MountPath
				}
			}
			t.Fatalf("volume %s (from %s) is not mounted", v.Name, name)
		}
	}
	t.Fatalf("no volume comes from %s", name)
	return ""
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

func TestChartLint(t *testing.T) {
	sets := map[string][]string{"default values": nil}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in testdata: %v", err)
	}
	for _, f := range files {
		sets[f] = []string{"--values", f}
	}
	for name, extra := range sets {
		t.Run(name, func(t *testing.T) {
			out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// The default values render a hardened Deployment of two replicas that log in to Vault with
// the chart's service account, probe /healthz and /readyz, and give the agent a configuration
// it accepts.
func TestChartDefaults(t *testing.T) {
	objs := mustRender(t, nil)
	for kind, want := range map[string]int{"Deployment": 1, "ServiceAccount": 1, "Service": 1, "PodDisruptionBudget": 1, "ConfigMap": 0, "ServiceMonitor": 0, "Secret": 0, "Role": 0, "ClusterRole": 0} {
		if got := len(objs[kind]); got != want {
			t.Errorf("%d objects of kind %s, want %d", got, kind, want)
		}
	}
	d, c := objs.deployment(t)
	pod := d.Spec.Template.Spec
	if n := len(pod.Containers); n != 1 {
		t.Errorf("deployment has %d containers, want the agent's only", n)
	}
	if d.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want 2", d.Spec.Replicas)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("pod template lacks selector label %s=%s", k, v)
		}
	}
	sa := objs.one(t, "ServiceAccount")
	if pod.ServiceAccountName != sa.Metadata.Name || sa.Metadata.Name != "rel-rotation-agent" {
		t.Errorf("pod uses service account %q, chart creates %q", pod.ServiceAccountName, sa.Metadata.Name)
	}
	if !isTrue(pod.AutomountServiceAccountToken) {
		t.Error("Kubernetes auth needs the service account token mounted in the pod")
	}
	// Non-root, read-only root filesystem, no privilege escalation, every capability dropped.
	if !isTrue(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.RunAsUser == 0 || pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod security context = %+v", pod.SecurityContext)
	}
	sc := c.SecurityContext
	if !isTrue(sc.ReadOnlyRootFilesystem) || !isFalse(sc.AllowPrivilegeEscalation) || !isTrue(sc.RunAsNonRoot) || !isFalse(sc.Privileged) {
		t.Errorf("container security context = %+v", sc)
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", c.Resources)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.LivenessProbe.HTTPGet.Port != "metrics" || c.ReadinessProbe.HTTPGet.Port != "metrics" {
		t.Errorf("probes = %+v / %+v, want /healthz and /readyz on the metrics port", c.LivenessProbe, c.ReadinessProbe)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9464 {
		t.Errorf("ports = %+v, want metrics 9464", c.Ports)
	}
	if c.Image != "ghcr.io/rotation-agent/rotation-agent:0.1.0" || len(c.Args) != 1 || c.Args[0] != "run" {
		t.Errorf("image %q args %v", c.Image, c.Args)
	}
	if pod.TerminationGracePeriodSeconds <= 30 {
		t.Errorf("grace period %ds does not exceed the agent's 30s shutdown timeout", pod.TerminationGracePeriodSeconds)
	}
	env := c.env()
	if id := env["ROTATION_AGENT_AGENT_ID"]; id.ValueFrom == nil || id.ValueFrom.FieldRef == nil || id.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("each replica must be named after its pod: %+v", id)
	}
	for name, want := range map[string]string{
		"ROTATION_AGENT_METRICS_LISTEN":         ":9464",
		"ROTATION_AGENT_VAULT_AUTH_METHOD":      "kubernetes",
		"ROTATION_AGENT_VAULT_KUBERNETES_ROLE":  "rotation-agent",
		"ROTATION_AGENT_NATS_CONSUMER":          "rotation-agent",
		"ROTATION_AGENT_NATS_URL":               "nats://nats:4222",
		"ROTATION_AGENT_VAULT_ADDR":             "https://vault.vault.svc:8200",
		"ROTATION_AGENT_NATS_REPLICAS":          "3",
		"ROTATION_AGENT_VAULT_KUBERNETES_MOUNT": "kubernetes",
		"ROTATION_AGENT_SHUTDOWN_TIMEOUT":       "30s",
		"ROTATION_AGENT_NATS_BIND_STREAMS":      "false",
		"ROTATION_AGENT_LOG_LEVEL":              "info",
		"ROTATION_AGENT_SUBJECT_PREFIX":         "rotation",
		// Evidence is signed by default, with a transit key the operator creates.
		"ROTATION_AGENT_EVIDENCE_SIGNER":             "transit",
		"ROTATION_AGENT_EVIDENCE_TRANSIT_MOUNT":      "transit",
		"ROTATION_AGENT_EVIDENCE_TRANSIT_KEY":        "rotation-agent-evidence",
		"ROTATION_AGENT_EVIDENCE_PROBE_CAPABILITIES": "true",
	} {
		if got := env[name].Value; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, unset := range []string{"ROTATION_AGENT_INVENTORY_FILE", "ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE", "ROTATION_AGENT_VAULT_CA_CERT"} {
		if _, set := env[unset]; set {
			t.Errorf("%s is set although the default values need no such file", unset)
		}
	}
	svc := objs.one(t, "Service")
	if !strings.Contains(svc.Metadata.Name, "metrics") {
		t.Errorf("service %q", svc.Metadata.Name)
	}
	assertAgentAccepts(t, c)
}

// assertAgentAccepts loads the container's environment as the agent would and validates it.
func assertAgentAccepts(t *testing.T, c container) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, agent.EnvPrefix+"_") || strings.HasPrefix(name, "VAULT_") {
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil {
			value = "from-" + e.Name
		}
		t.Setenv(e.Name, value)
	}
	if os.Getenv("ROTATION_AGENT_VAULT_AUTH_METHOD") == agent.AuthKubernetes && os.Getenv("ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE") == "" {
		// Stands in for the service account token Kubernetes mounts at the default path, which
		// the agent checks is readable.
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte("eyJhbGciOiJSUzI1NiJ9.stand-in.sig\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE", path)
	}
	cfg, err := agent.Load()
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Errorf("the agent refuses the chart's configuration: %v", err)
	}
}

// Every variable the chart sets is a documented setting of the agent.
func TestChartSetsOnlyKnownSettings(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, values := range append([][]string{nil}, splitEach(files)...) {
		_, c := mustRender(t, values).deployment(t)
		for _, e := range c.Env {
			name := strings.TrimSuffix(e.Name, "_FILE")
			if !strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "`"+e.Name+"`") {
				t.Errorf("values %v: %s is not a setting in docs/configuration.md", values, e.Name)
			}
		}
	}
}

func splitEach(files []string) [][]string {
	out := make([][]string, 0, len(files))
	for _, f := range files {
		out = append(out, []string{f})
	}
	return out
}

// AppRole, NATS user/password with mutual TLS, a Vault CA, an inline inventory and a
// ServiceMonitor: every file setting points into a read-only mount of the named Secret or
// ConfigMap, secrets are never values in the pod spec, and the inventory is one the agent
// parses.
func TestChartSecretsInventoryAndServiceMonitor(t *testing.T) {
	objs := mustRender(t, []string{"testdata/secrets-inventory-monitor.yaml"})
	d, c := objs.deployment(t)
	pod := d.Spec.Template.Spec
	env := c.env()
	if d.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", d.Spec.Replicas)
	}
	if isTrue(pod.AutomountServiceAccountToken) {
		t.Error("the Kubernetes token is mounted although AppRole does the login")
	}
	for setting, source := range map[string]string{
		"ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_FILE": "rotation-agent-approle",
		"ROTATION_AGENT_NATS_PASSWORD_FILE":            "rotation-agent-nats",
		"ROTATION_AGENT_NATS_CA_CERT":                  "rotation-agent-nats-tls",
		"ROTATION_AGENT_NATS_CERT":                     "rotation-agent-nats-tls",
		"ROTATION_AGENT_NATS_KEY":                      "rotation-agent-nats-tls",
		"ROTATION_AGENT_VAULT_CA_CERT":                 "vault-ca",
		"ROTATION_AGENT_EVIDENCE_KEY_FILE":             "rotation-agent-evidence-key",
	} {
		dir := mountOf(t, pod, c, source)
		if got := env[setting].Value; !strings.HasPrefix(got, dir+"/") {
			t.Errorf("%s = %q, want a file in the mount of %s (%s)", setting, got, source, dir)
		}
	}
	if got := env["ROTATION_AGENT_VAULT_CA_CERT"].Value; !strings.HasSuffix(got, "/ca.pem") {
		t.Errorf("Vault CA %q does not use the configured key ca.pem", got)
	}
	if user := env["ROTATION_AGENT_NATS_USER"]; user.ValueFrom == nil || user.ValueFrom.SecretKeyRef == nil || user.ValueFrom.SecretKeyRef.Name != "rotation-agent-nats" {
		t.Errorf("NATS user = %+v, want a reference to the Secret", user)
	}
	for _, secret := range []string{"ROTATION_AGENT_NATS_PASSWORD", "ROTATION_AGENT_NATS_TOKEN", "ROTATION_AGENT_VAULT_TOKEN", "VAULT_TOKEN"} {
		if _, set := env[secret]; set {
			t.Errorf("%s is in the pod's environment; secrets come from mounted files", secret)
		}
	}
	if env["ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_WRAPPED"].Value != "true" {
		t.Error("wrapped secret id not passed on")
	}
	if env["ROTATION_AGENT_EVIDENCE_SIGNER"].Value != "file" {
		t.Errorf("evidence signer %q, want file", env["ROTATION_AGENT_EVIDENCE_SIGNER"].Value)
	}
	if env["ROTATION_AGENT_OVERLAP"].Value != "15m" {
		t.Error("agent.extraEnv not passed on")
	}

	cm := objs.one(t, "ConfigMap")
	inventory := cm.Data["inventory.yaml"]
	dir := mountOf(t, pod, c, cm.Metadata.Name)
	if got := env["ROTATION_AGENT_INVENTORY_FILE"].Value; got != dir+"/inventory.yaml" {
		t.Errorf("inventory file %q, want %s/inventory.yaml", got, dir)
	}
	bindings, err := discovery.ParseInventory("inventory.yaml", []byte(inventory), nil)
	if err != nil || len(bindings) != 1 {
		t.Errorf("the agent does not accept the rendered inventory (%d bindings): %v\n%s", len(bindings), err, inventory)
	}

	var sm serviceMonitorSpec
	smObj := objs.one(t, "ServiceMonitor")
	if err := smObj.raw.Decode(&sm); err != nil {
		t.Fatal(err)
	}
	if smObj.Metadata.Labels["release"] != "prometheus" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("service monitor = %+v labels %v", sm.Spec, smObj.Metadata.Labels)
	}
	svc := objs.one(t, "Service")
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Metadata.Labels[k] != v {
			t.Errorf("the ServiceMonitor's selector %s=%s does not select the metrics Service", k, v)
		}
	}
}

// Kubernetes auth for a Vault role with an audience: a projected token for that audience,
// and the agent pointed at it; the default token is not mounted. NATS credentials come from a
// creds file. One replica gets no PodDisruptionBudget (it would block every drain).
func TestChartKubernetesAudience(t *testing.T) {
	objs := mustRender(t, []string{"testdata/kubernetes-audience.yaml"})
	d, c := objs.deployment(t)
	pod := d.Spec.Template.Spec
	env := c.env()
	if isTrue(pod.AutomountServiceAccountToken) {
		t.Error("the default service account token is mounted beside the projected one")
	}
	var tokenVolume string
	for _, v := range pod.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil && s.ServiceAccountToken.Audience == "vault" {
					tokenVolume = v.Name
					for _, m := range c.VolumeMounts {
						if m.Name == v.Name && env["ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE"].Value != m.MountPath+"/"+s.ServiceAccountToken.Path {
							t.Errorf("token file %q is not the projected token %s/%s", env["ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE"].Value, m.MountPath, s.ServiceAccountToken.Path)
						}
					}
				}
			}
		}
	}
	if tokenVolume == "" {
		t.Fatal("no projected service account token for audience vault")
	}
	if env["ROTATION_AGENT_VAULT_KUBERNETES_ROLE"].Value != "payments-rotation" {
		t.Errorf("role = %q", env["ROTATION_AGENT_VAULT_KUBERNETES_ROLE"].Value)
	}
	dir := mountOf(t, pod, c, "rotation-agent-nats-creds")
	if got := env["ROTATION_AGENT_NATS_CREDS_FILE"].Value; got != dir+"/nats.creds" {
		t.Errorf("creds file %q, want %s/nats.creds", got, dir)
	}
	if n := len(objs["PodDisruptionBudget"]); n != 0 {
		t.Errorf("%d PodDisruptionBudgets for a single replica, want 0", n)
	}
}

// Values that would weaken the pod or leave the agent without what it needs are refused when
// rendering, with the offending field named.
func TestChartRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		sets []string
		want string
	}{
		{"writable root filesystem", []string{"securityContext.readOnlyRootFilesystem=false"}, "readOnlyRootFilesystem"},
		{"privilege escalation", []string{"securityContext.allowPrivilegeEscalation=true"}, "allowPrivilegeEscalation"},
		{"root user", []string{"podSecurityContext.runAsNonRoot=false"}, "runAsNonRoot"},
		{"added capability", []string{"securityContext.capabilities.add={NET_ADMIN}"}, "capabilities"},
		{"no vault address", []string{"vault.addr="}, "addr"},
		{"vault address without scheme", []string{"vault.addr=vault:8200"}, "addr"},
		{"approle without secret", []string{"vault.auth.method=approle", "vault.auth.approle.roleId=r"}, "secretName"},
		{"unknown auth method", []string{"vault.auth.method=userpass"}, "method"},
		{"nats creds without secret", []string{"nats.auth.type=creds"}, "secretName"},
		{"file signer without secret", []string{"evidence.signer=file"}, "secretName"},
		{"unknown evidence signer", []string{"evidence.signer=hsm"}, "signer"},
		{"nats url with a password", []string{"nats.urls={nats://u:p@nats:4222}"}, "urls"},
		{"unknown mode", []string{"mode=daemonset"}, "mode"},
		{"misspelt value", []string{"replicas=3"}, "replicas"},
		{"service monitor without service", []string{"metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"}, "metrics.service.enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, nil, tc.sets...)
			if err == nil {
				t.Fatalf("rendered with %v, want a refusal", tc.sets)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("refusal does not name %s:\n%v", tc.want, err)
			}
		})
	}
}
