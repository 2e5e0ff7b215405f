package charts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/delivery"
)

// sidecarPod is the part of the rendered application pod the sidecar tests look into.
type sidecarPod struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				ShareProcessNamespace *bool `yaml:"shareProcessNamespace"`
				Containers            []struct {
					Name           string    `yaml:"name"`
					ReadinessProbe *struct{} `yaml:"readinessProbe"`
					VolumeMounts   []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
						ReadOnly  bool   `yaml:"readOnly"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name     string `yaml:"name"`
					EmptyDir *struct {
						Medium    string `yaml:"medium"`
						SizeLimit string `yaml:"sizeLimit"`
					} `yaml:"emptyDir"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// Sidecar mode renders the application's pod with the agent beside it: one replica, a shared
// in-memory volume the agent writes and the application reads, the sinks file the agent
// parses, the sidecar settings the agent accepts, no readiness probe of the agent's gating the
// application, and none of the central deployment's objects.
func TestChartSidecar(t *testing.T) {
	objs := mustRender(t, []string{"testdata/sidecar.yaml"})
	for kind, want := range map[string]int{"Deployment": 1, "ConfigMap": 1, "ServiceAccount": 1, "Service": 0, "PodDisruptionBudget": 0, "ServiceMonitor": 0} {
		if got := len(objs[kind]); got != want {
			t.Errorf("%d objects of kind %s, want %d", got, kind, want)
		}
	}
	dep := objs.one(t, "Deployment")
	if dep.Metadata.Name != "payments" {
		t.Errorf("deployment %q, want the application's name", dep.Metadata.Name)
	}
	var pod sidecarPod
	if err := dep.raw.Decode(&pod); err != nil {
		t.Fatal(err)
	}
	if pod.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", pod.Spec.Replicas)
	}
	spec := pod.Spec.Template.Spec
	const mount = "/run/rotation-agent/credentials"
	var shared string
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.Medium == "Memory" {
			shared = v.Name
			if v.EmptyDir.SizeLimit == "" {
				t.Errorf("shared volume %s has no size limit", v.Name)
			}
		}
	}
	if shared == "" {
		t.Fatal("no in-memory volume for the credential files")
	}
	names := []string{}
	for _, c := range spec.Containers {
		names = append(names, c.Name)
		found := false
		for _, m := range c.VolumeMounts {
			if m.Name != shared {
				continue
			}
			found = true
			if m.MountPath != mount {
				t.Errorf("%s mounts the credentials at %s, want %s", c.Name, m.MountPath, mount)
			}
			if wantRO := c.Name != "rotation-agent"; m.ReadOnly != wantRO {
				t.Errorf("%s mounts the credentials readOnly=%v, want %v", c.Name, m.ReadOnly, wantRO)
			}
		}
		if !found {
			t.Errorf("container %s does not mount the shared credentials volume", c.Name)
		}
		if c.Name == "rotation-agent" && c.ReadinessProbe != nil {
			t.Error("the agent's readiness probe would take the application out of service when Vault is down")
		}
	}
	if strings.Join(names, ",") != "payments-api,rotation-agent" {
		t.Errorf("containers %v, want the application's and the agent", names)
	}
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		t.Error("process namespace shared without notify.kind signal by process name")
	}

	// The sinks file is one the agent loads.
	cm := objs.one(t, "ConfigMap")
	sinksFile := filepath.Join(t.TempDir(), "sinks.yaml")
	if err := os.WriteFile(sinksFile, []byte(cm.Data["sinks.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	sinks, err := delivery.LoadSinks(sinksFile)
	if err != nil {
		t.Fatalf("the agent refuses the rendered sinks file: %v", err)
	}
	if len(sinks) != 1 || sinks[0].Path != mount+"/db.env" || sinks[0].Mode != 0o640 {
		t.Errorf("sinks = %+v", sinks)
	}
	_, c := objs.deployment(t)
	env := c.env()
	if env["ROTATION_AGENT_SIDECAR_APP"].Value != "payments" || env["ROTATION_AGENT_SIDECAR_CONFIRM"].Value != "health" {
		t.Errorf("sidecar settings: %+v", c.Env)
	}
	if got := env["ROTATION_AGENT_SIDECAR_SINKS_FILE"].Value; mountOfConfigMap(t, objs, cm.Metadata.Name)+"/sinks.yaml" != got {
		t.Errorf("sinks file %s is not in the mounted ConfigMap", got)
	}
	for i := range c.Env {
		if c.Env[i].Name == "ROTATION_AGENT_SIDECAR_SINKS_FILE" {
			c.Env[i].Value = sinksFile
		}
	}
	assertAgentAccepts(t, c)
}

func mountOfConfigMap(t *testing.T, objs rendered, name string) string {
	t.Helper()
	d, c := objs.deployment(t)
	return mountOf(t, d.Spec.Template.Spec, c, name)
}

// Without application containers the chart renders the sinks ConfigMap only (the agent is
// injected into the application's own pod); signalling by process name shares the process
// namespace; bad sidecar values are refused with a reason.
func TestChartSidecarVariants(t *testing.T) {
	objs := mustRender(t, []string{"testdata/sidecar.yaml"}, "sidecar.application.containers=null")
	if len(objs["Deployment"]) != 0 || len(objs["ConfigMap"]) != 1 {
		t.Errorf("without application containers: %d deployments, %d config maps; want 0 and 1", len(objs["Deployment"]), len(objs["ConfigMap"]))
	}
	objs = mustRender(t, []string{"testdata/sidecar.yaml"}, "sidecar.notify.kind=signal", "sidecar.notify.process=payments-api")
	var pod sidecarPod
	node := objs.one(t, "Deployment").raw
	if err := node.Decode(&pod); err != nil {
		t.Fatal(err)
	}
	if s := pod.Spec.Template.Spec.ShareProcessNamespace; s == nil || !*s {
		t.Error("signal by process name needs a shared process namespace")
	}
	_, c := objs.deployment(t)
	if env := c.env(); env["ROTATION_AGENT_SIDECAR_NOTIFY_PROCESS"].Value != "payments-api" || env["ROTATION_AGENT_SIDECAR_NOTIFY_SIGNAL"].Value != "HUP" {
		t.Errorf("signal settings: %+v", c.Env)
	}

	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"no application name", []string{"sidecar.app="}, "sidecar.app"},
		{"sink outside the shared volume", []string{"sidecar.sinks[0].path=/tmp/db.env"}, "not under sidecar.mountPath"},
		{"unknown format", []string{"sidecar.sinks[0].format=xml"}, "format"},
		{"http notify without url", []string{"sidecar.notify.url="}, "sidecar.notify.url"},
		{"health without url", []string{"sidecar.confirm.healthUrl="}, "healthUrl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, []string{"testdata/sidecar.yaml"}, tc.sets...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render with %v: %v, want a refusal naming %s", tc.sets, err, tc.want)
			}
		})
	}
}
