package deploy_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"gopkg.in/yaml.v3"
)

// dir holds the manifests, relative to this package.
const dir = "kubernetes"

const (
	namespace = "nyro-develop"
	appName   = "atenex-gateway"
	nameLabel = "app.kubernetes.io/name"
)

// The parts of the Kubernetes objects the tests read. Only the fields
// checked here are declared; yaml.v3 needs every key spelled out, as it
// would otherwise look for "failurethreshold".

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type object struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type kustomization struct {
	object    `yaml:",inline"`
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
}

type configMap struct {
	object `yaml:",inline"`
	// Data is decoded loosely so that an unquoted number, which the API
	// server rejects in a ConfigMap, shows up as a non-string.
	Data map[string]any `yaml:"data"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Capabilities             *struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type container struct {
	Name    string `yaml:"name"`
	Image   string `yaml:"image"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional *bool  `yaml:"optional"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	ReadinessProbe  *probe           `yaml:"readinessProbe"`
	LivenessProbe   *probe           `yaml:"livenessProbe"`
	Lifecycle       map[string]any   `yaml:"lifecycle"`
	SecurityContext *securityContext `yaml:"securityContext"`
}

type deployment struct {
	object `yaml:",inline"`
	Spec   struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				MaxSurge       any `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
				EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
				Affinity                      *struct {
					PodAntiAffinity *struct {
						Preferred []struct {
							Weight int `yaml:"weight"`
							Term   struct {
								TopologyKey   string        `yaml:"topologyKey"`
								LabelSelector labelSelector `yaml:"labelSelector"`
							} `yaml:"podAffinityTerm"`
						} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				TopologySpreadConstraints []struct {
					TopologyKey   string        `yaml:"topologyKey"`
					LabelSelector labelSelector `yaml:"labelSelector"`
				} `yaml:"topologySpreadConstraints"`
				Containers []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	object `yaml:",inline"`
	Spec   struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type hpa struct {
	object `yaml:",inline"`
	Spec   struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource *struct {
				Name   string `yaml:"name"`
				Target struct {
					Type               string `yaml:"type"`
					AverageUtilization *int   `yaml:"averageUtilization"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
		Behavior *struct {
			ScaleDown *struct {
				StabilizationWindowSeconds *int `yaml:"stabilizationWindowSeconds"`
			} `yaml:"scaleDown"`
		} `yaml:"behavior"`
	} `yaml:"spec"`
}

type pdb struct {
	object `yaml:",inline"`
	Spec   struct {
		MinAvailable   any           `yaml:"minAvailable"`
		MaxUnavailable any           `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

// manifests is every manifest of the directory, parsed.
type manifests struct {
	configMap  configMap
	deployment deployment
	service    service
	hpa        hpa
	pdb        pdb
}

// loadAll parses every manifest, failing the test on any error.
func loadAll(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	for file, dst := range map[string]any{
		"configmap.yaml":  &m.configMap,
		"deployment.yaml": &m.deployment,
		"service.yaml":    &m.service,
		"hpa.yaml":        &m.hpa,
		"pdb.yaml":        &m.pdb,
	} {
		load(t, file, dst)
	}
	return m
}

// load decodes the one YAML document of file into dst.
func load(t *testing.T, file string, dst any) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	if err := dec.Decode(dst); err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: got a second YAML document (error %v), want one object per file", file, err)
	}
}

// container returns the Deployment's only container.
func (m *manifests) container(t *testing.T) container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("got %d containers in the Deployment, want 1", len(cs))
	}
	return cs[0]
}

// containerPort returns the number of the container port called name.
func (c container) containerPort(t *testing.T, name string) int {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("no container port named %q in %+v", name, c.Ports)
	return 0
}

// environ turns the ConfigMap's data into KEY=value entries, as envFrom
// hands them to the container.
func (m *manifests) environ(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, k := range slices.Sorted(maps.Keys(m.configMap.Data)) {
		s, ok := m.configMap.Data[k].(string)
		if !ok {
			t.Errorf("ConfigMap data %s: got %T %v, want a quoted string (the API server refuses other types)", k, m.configMap.Data[k], m.configMap.Data[k])
			continue
		}
		env = append(env, k+"="+s)
	}
	return env
}

// config loads the ConfigMap through config.Load, as the gateway would.
func (m *manifests) config(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load(m.environ(t))
	if err != nil {
		t.Fatalf("config.Load of the ConfigMap's data: %v", err)
	}
	return cfg
}

// intData is the ConfigMap's value for key as a whole number.
func (m *manifests) intData(t *testing.T, key string) int {
	t.Helper()
	s, _ := m.configMap.Data[key].(string)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("ConfigMap data %s: got %q, want a whole number", key, s)
	}
	return n
}

// subset reports whether every label of sel is in labels with the same
// value; an empty selector selects nothing here, as that is never meant.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKustomizationListsEveryManifest checks that kubectl apply -k applies
// every manifest of the directory, and only existing ones.
func TestKustomizationListsEveryManifest(t *testing.T) {
	var k kustomization
	load(t, "kustomization.yaml", &k)
	if k.Namespace != namespace {
		t.Errorf("kustomization namespace: got %q, want %q", k.Namespace, namespace)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			want = append(want, base)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources: got %q, want every manifest of %s: %q", got, dir, want)
	}
}

// TestObjects checks each manifest's kind and that every object is named,
// labelled and namespaced alike.
func TestObjects(t *testing.T) {
	for _, row := range []struct {
		file, apiVersion, kind string
	}{
		{"configmap.yaml", "v1", "ConfigMap"},
		{"deployment.yaml", "apps/v1", "Deployment"},
		{"service.yaml", "v1", "Service"},
		{"hpa.yaml", "autoscaling/v2", "HorizontalPodAutoscaler"},
		{"pdb.yaml", "policy/v1", "PodDisruptionBudget"},
	} {
		t.Run(row.file, func(t *testing.T) {
			var o object
			load(t, row.file, &o)
			for _, c := range []struct{ what, got, want string }{
				{"apiVersion", o.APIVersion, row.apiVersion},
				{"kind", o.Kind, row.kind},
				{"metadata.name", o.Metadata.Name, appName},
				{"metadata.namespace", o.Metadata.Namespace, namespace},
				{"label " + nameLabel, o.Metadata.Labels[nameLabel], appName},
			} {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestConfigMapLoads checks that the gateway accepts the ConfigMap and that
// it departs from config.Default only where the cluster needs it to: a
// shutdown delay for endpoint removal to propagate.
func TestConfigMapLoads(t *testing.T) {
	m := loadAll(t)
	got := m.config(t)
	want := config.Default()
	want.ShutdownDelay = 5 * time.Second

	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("config.Load(ConfigMap).%s: got %v, want %v", name, g, w)
		}
	}
}

// TestPorts checks that the container, the Service, the probes and the
// Prometheus annotations use the ports the gateway listens on.
func TestPorts(t *testing.T) {
	m := loadAll(t)
	cfg := m.config(t)
	c := m.container(t)
	defaults := config.Default()
	httpPort, adminPort := c.containerPort(t, "http"), c.containerPort(t, "admin")
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil {
		t.Fatalf("probes: got readiness %+v, liveness %+v, want both httpGet", c.ReadinessProbe, c.LivenessProbe)
	}
	if len(m.service.Spec.Ports) != 1 {
		t.Fatalf("Service ports: got %+v, want one, http", m.service.Spec.Ports)
	}
	ann := m.deployment.Spec.Template.Metadata.Annotations

	for _, row := range []struct {
		name      string
		got, want any
	}{
		{"container port http = ConfigMap PORT", httpPort, m.intData(t, "PORT")},
		{"container port http = config.Load PORT", httpPort, cfg.Port},
		{"container port http = default PORT (the Dockerfile's)", httpPort, defaults.Port},
		{"container port admin = ConfigMap GATEWAY_ADMIN_PORT", adminPort, m.intData(t, "GATEWAY_ADMIN_PORT")},
		{"container port admin = config.Load GATEWAY_ADMIN_PORT", adminPort, cfg.AdminPort},
		{"container port admin = default GATEWAY_ADMIN_PORT", adminPort, defaults.AdminPort},
		{"annotation prometheus.io/scrape", ann["prometheus.io/scrape"], "true"},
		{"annotation prometheus.io/port = admin port", ann["prometheus.io/port"], strconv.Itoa(adminPort)},
		{"annotation prometheus.io/path", ann["prometheus.io/path"], "/metrics"},
		{"readiness probe path", c.ReadinessProbe.HTTPGet.Path, "/health"},
		{"readiness probe port", c.ReadinessProbe.HTTPGet.Port, "http"},
		{"liveness probe path", c.LivenessProbe.HTTPGet.Path, "/health"},
		{"liveness probe port", c.LivenessProbe.HTTPGet.Port, "http"},
		{"Service port", m.service.Spec.Ports[0].Port, 80},
		{"Service targetPort", m.service.Spec.Ports[0].TargetPort, "http"},
		{"Service type", m.service.Spec.Type, "ClusterIP"},
		{"Deployment envFrom", fmt.Sprint(envFromNames(c)), fmt.Sprint([]string{m.configMap.Metadata.Name})},
	} {
		t.Run(row.name, func(t *testing.T) {
			if row.got != row.want {
				t.Errorf("got %#v, want %#v", row.got, row.want)
			}
		})
	}
	for _, p := range m.service.Spec.Ports {
		if p.Port == adminPort || p.TargetPort == "admin" || p.TargetPort == adminPort {
			t.Errorf("Service port %+v: got the admin port exposed, want only http (metrics and pprof stay off the Service)", p)
		}
	}
}

func envFromNames(c container) []string {
	var names []string
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil {
			names = append(names, e.ConfigMapRef.Name)
		}
	}
	return names
}

// TestShutdownTiming checks the drain against the pod's lifecycle: the pod
// fails readiness before the gateway stops serving, and the kubelet's
// SIGKILL comes after the longest drain.
func TestShutdownTiming(t *testing.T) {
	m := loadAll(t)
	cfg := m.config(t)
	c := m.container(t)
	spec := m.deployment.Spec.Template.Spec
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds: got unset (30 s), want it set above the drain")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	drain := cfg.ShutdownDelay + cfg.ShutdownTimeout
	const margin = 5 * time.Second
	if grace-drain < margin {
		t.Errorf("terminationGracePeriodSeconds: got %v, want at least GATEWAY_SHUTDOWN_DELAY + GATEWAY_SHUTDOWN_TIMEOUT (%v) + %v", grace, drain, margin)
	}
	if cfg.ShutdownDelay <= 0 {
		t.Errorf("GATEWAY_SHUTDOWN_DELAY: got %v, want > 0 so the pod leaves the endpoints before its listener closes", cfg.ShutdownDelay)
	}
	r, l := c.ReadinessProbe, c.LivenessProbe
	if r == nil || l == nil {
		t.Fatalf("probes: got readiness %+v, liveness %+v, want both", r, l)
	}
	unready := time.Duration(r.PeriodSeconds*max(r.FailureThreshold, 1)) * time.Second
	if unready > cfg.ShutdownDelay {
		t.Errorf("readiness period × failureThreshold: got %v, want ≤ GATEWAY_SHUTDOWN_DELAY (%v)", unready, cfg.ShutdownDelay)
	}
	if c.Lifecycle != nil {
		t.Errorf("container lifecycle: got %v, want none (the gateway's shutdown delay replaces a preStop sleep, and distroless has no sleep)", c.Lifecycle)
	}
	for _, row := range []struct {
		name      string
		got, want int
	}{
		{"liveness periodSeconds", l.PeriodSeconds, 10},
		{"liveness failureThreshold", l.FailureThreshold, 3},
		{"readiness periodSeconds", r.PeriodSeconds, 2},
		{"readiness failureThreshold", r.FailureThreshold, 1},
	} {
		if row.got != row.want {
			t.Errorf("%s: got %d, want %d", row.name, row.got, row.want)
		}
	}
	if l.InitialDelaySeconds > 10 {
		t.Errorf("liveness initialDelaySeconds: got %d, want ≤ 10 (the gateway starts in milliseconds)", l.InitialDelaySeconds)
	}
}

// TestSecurityContext checks that the container runs as distroless's
// nonroot user, with nothing it could escalate to or write.
func TestSecurityContext(t *testing.T) {
	m := loadAll(t)
	sc := m.container(t).SecurityContext
	if sc == nil {
		t.Fatal("container securityContext: got none")
	}
	str := func(p any) string {
		v := reflect.ValueOf(p)
		if v.IsNil() {
			return "unset"
		}
		return fmt.Sprint(v.Elem().Interface())
	}
	drop, add, seccomp := "unset", "", "unset"
	if sc.Capabilities != nil {
		drop, add = strings.Join(sc.Capabilities.Drop, ","), strings.Join(sc.Capabilities.Add, ",")
	}
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile.Type
	}
	for _, row := range []struct {
		field, got, want string
	}{
		{"runAsNonRoot", str(sc.RunAsNonRoot), "true"},
		{"runAsUser", str(sc.RunAsUser), "65532"},
		{"runAsGroup", str(sc.RunAsGroup), "65532"},
		{"readOnlyRootFilesystem", str(sc.ReadOnlyRootFilesystem), "true"},
		{"allowPrivilegeEscalation", str(sc.AllowPrivilegeEscalation), "false"},
		{"capabilities.drop", drop, "ALL"},
		{"capabilities.add", add, ""},
		{"seccompProfile.type", seccomp, "RuntimeDefault"},
	} {
		if row.got != row.want {
			t.Errorf("securityContext.%s: got %s, want %s", row.field, row.got, row.want)
		}
	}
	if links := m.deployment.Spec.Template.Spec.EnableServiceLinks; links == nil || *links {
		t.Errorf("enableServiceLinks: got %s, want false (service links inject NAME_PORT variables next to GATEWAY_*)", str(links))
	}
}

// TestSelectors checks that the Service, the HPA, the PDB and the
// Deployment's own selector and anti-affinity all point at its pods.
func TestSelectors(t *testing.T) {
	m := loadAll(t)
	d := m.deployment
	pod := d.Spec.Template.Metadata.Labels
	ref := m.hpa.Spec.ScaleTargetRef

	rows := []struct {
		name string
		ok   bool
		got  any
	}{
		{"Deployment selector selects its pods", subset(d.Spec.Selector.MatchLabels, pod), d.Spec.Selector.MatchLabels},
		{"Service selector selects the pods", subset(m.service.Spec.Selector, pod), m.service.Spec.Selector},
		{"PDB selector selects the pods", subset(m.pdb.Spec.Selector.MatchLabels, pod), m.pdb.Spec.Selector.MatchLabels},
		{"HPA targets the Deployment", ref.APIVersion == d.APIVersion && ref.Kind == d.Kind && ref.Name == d.Metadata.Name, ref},
	}
	spread := false
	if a := d.Spec.Template.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, p := range a.PodAntiAffinity.Preferred {
			rows = append(rows, struct {
				name string
				ok   bool
				got  any
			}{"anti-affinity selects the pods", subset(p.Term.LabelSelector.MatchLabels, pod), p.Term.LabelSelector.MatchLabels})
			spread = spread || p.Term.TopologyKey == "kubernetes.io/hostname"
		}
	}
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		rows = append(rows, struct {
			name string
			ok   bool
			got  any
		}{"topology spread selects the pods", subset(c.LabelSelector.MatchLabels, pod), c.LabelSelector.MatchLabels})
		spread = spread || c.TopologyKey == "kubernetes.io/hostname"
	}
	if !spread {
		t.Error("pod spread: got no anti-affinity or topology spread on kubernetes.io/hostname, want replicas on different nodes")
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if !row.ok {
				t.Errorf("got %+v, want it to select the pod labels %v", row.got, pod)
			}
		})
	}
}

// TestScaling checks replicas, the rollout strategy, the HPA and the PDB
// against each other.
func TestScaling(t *testing.T) {
	m := loadAll(t)
	d, h, c := m.deployment, m.hpa, m.container(t)
	replicas, minReplicas := -1, -1
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	cpuTarget, stabilization := -1, -1
	for _, metric := range h.Spec.Metrics {
		if metric.Type == "Resource" && metric.Resource != nil && metric.Resource.Name == "cpu" &&
			metric.Resource.Target.Type == "Utilization" && metric.Resource.Target.AverageUtilization != nil {
			cpuTarget = *metric.Resource.Target.AverageUtilization
		}
	}
	if b := h.Spec.Behavior; b != nil && b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil {
		stabilization = *b.ScaleDown.StabilizationWindowSeconds
	}
	minAvailable, _ := m.pdb.Spec.MinAvailable.(int)
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil {
		t.Fatalf("strategy: got %+v, want RollingUpdate with rollingUpdate set", d.Spec.Strategy)
	}

	for _, row := range []struct {
		name string
		ok   bool
		got  any
		want string
	}{
		{"Deployment replicas", replicas >= 2, replicas, "≥ 2"},
		{"HPA minReplicas", minReplicas >= 2, minReplicas, "≥ 2"},
		{"HPA maxReplicas", h.Spec.MaxReplicas == 10, h.Spec.MaxReplicas, "10"},
		{"HPA CPU utilization target", cpuTarget == 70, cpuTarget, "70"},
		{"HPA scale-down stabilization", stabilization == 300, stabilization, "300"},
		{"HPA needs a CPU request", c.Resources.Requests["cpu"] != "", c.Resources.Requests["cpu"], "set"},
		{"PDB minAvailable", minAvailable == 1, m.pdb.Spec.MinAvailable, "1"},
		{"PDB minAvailable below HPA minReplicas", minAvailable < minReplicas, minAvailable, fmt.Sprintf("< %d, or a node drain can never evict", minReplicas)},
		{"PDB sets one of minAvailable and maxUnavailable", m.pdb.Spec.MaxUnavailable == nil, m.pdb.Spec.MaxUnavailable, "unset"},
		{"strategy type", d.Spec.Strategy.Type == "RollingUpdate", d.Spec.Strategy.Type, "RollingUpdate"},
		{"maxUnavailable", ru.MaxUnavailable == 0, ru.MaxUnavailable, "0"},
		{"maxSurge", ru.MaxSurge == 1, ru.MaxSurge, "1"},
	} {
		t.Run(row.name, func(t *testing.T) {
			if !row.ok {
				t.Errorf("got %v, want %s", row.got, row.want)
			}
		})
	}
}

// TestResources checks the container's requests and limits, and that Go's
// soft memory limit sits below the container's hard one.
func TestResources(t *testing.T) {
	m := loadAll(t)
	c := m.container(t)
	res := c.Resources
	for _, row := range []struct {
		name, got, want string
	}{
		{"requests.cpu", res.Requests["cpu"], "250m"},
		{"requests.memory", res.Requests["memory"], "64Mi"},
		{"limits.memory", res.Limits["memory"], "256Mi"},
	} {
		if row.got != row.want {
			t.Errorf("resources.%s: got %q, want %q", row.name, row.got, row.want)
		}
	}
	limit := quantity(t, res.Limits["memory"])
	if request := quantity(t, res.Requests["memory"]); request > limit {
		t.Errorf("memory: got request %d > limit %d bytes, want request ≤ limit", request, limit)
	}
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		soft, err := config.ParseSize(e.Value)
		if err != nil {
			t.Fatalf("GOMEMLIMIT: %v", err)
		}
		if soft >= limit || soft < limit*3/4 {
			t.Errorf("GOMEMLIMIT: got %s (%d bytes), want between 75%% and 100%% of limits.memory %s", e.Value, soft, res.Limits["memory"])
		}
	}
}

// quantity reads a Kubernetes memory quantity in bytes: "64Mi" and "1Gi"
// are binary, "500M" and "1G" decimal, "1000" plain bytes.
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	if q == "" {
		t.Fatal("memory quantity: got none, want one such as 256Mi")
	}
	s := q
	if strings.HasSuffix(s, "i") || strings.IndexAny(s[len(s)-1:], "kMGT") == 0 {
		s += "B" // config.ParseSize's "64MiB" and "500MB"
	}
	n, err := config.ParseSize(s)
	if err != nil {
		t.Fatalf("memory quantity %q: %v", q, err)
	}
	return n
}

// authSecret is the Secret GATEWAY_JWT_SECRET comes from; it is created
// by hand (kubectl create secret generic), never committed.
const authSecret = "atenex-gateway-auth"

// TestJWTSecretFromSecret: the HMAC key of GATEWAY_AUTH_MODE=jwt comes
// from a Secret, never from the ConfigMap or a literal in the manifest,
// and the Secret is optional, so that the gateway starts (auth off)
// before one exists.
func TestJWTSecretFromSecret(t *testing.T) {
	m := loadAll(t)
	if _, ok := m.configMap.Data["GATEWAY_JWT_SECRET"]; ok {
		t.Error("GATEWAY_JWT_SECRET is in the ConfigMap, want it only in a Secret")
	}
	found := false
	for _, e := range m.container(t).Env {
		if e.Name != "GATEWAY_JWT_SECRET" {
			continue
		}
		found = true
		if e.Value != "" {
			t.Error("GATEWAY_JWT_SECRET has a literal value in the Deployment, want valueFrom.secretKeyRef")
		}
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Fatal("GATEWAY_JWT_SECRET: got no valueFrom.secretKeyRef")
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != authSecret || ref.Key != "GATEWAY_JWT_SECRET" {
			t.Errorf("GATEWAY_JWT_SECRET from secret %q key %q, want %q key GATEWAY_JWT_SECRET", ref.Name, ref.Key, authSecret)
		}
		if ref.Optional == nil || !*ref.Optional {
			t.Error("GATEWAY_JWT_SECRET's Secret is required, want optional: true (auth is off until it exists)")
		}
	}
	if !found {
		t.Fatal("the Deployment does not set GATEWAY_JWT_SECRET from a Secret")
	}
}

// TestConfigMapLoadsWithAuth: turning jwt mode on with a key from the
// Secret, the ConfigMap's other settings still load; with the ConfigMap as
// committed, auth is off.
func TestConfigMapLoadsWithAuth(t *testing.T) {
	m := loadAll(t)
	if cfg := m.config(t); cfg.AuthMode != "none" {
		t.Errorf("GATEWAY_AUTH_MODE: got %q, want none until the Secret is created", cfg.AuthMode)
	}
	env := append(m.environ(t), "GATEWAY_AUTH_MODE=jwt", "GATEWAY_JWT_SECRET="+strings.Repeat("k", 32))
	if _, err := config.Load(env); err != nil {
		t.Errorf("the ConfigMap with jwt mode and a secret: %v", err)
	}
}
