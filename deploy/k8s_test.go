package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite k8s/base/prometheusrule.yaml from deploy/prometheus/rules")

const (
	overlaysDir        = "k8s/overlays"
	prometheusRuleFile = "k8s/base/prometheusrule.yaml"
	rulesGlob          = "prometheus/rules/*.yml"
	dashboardsDir      = "grafana/dashboards"
	k8sDoc             = "../docs/k8s.md"
)

// The operators' custom resources are decoded into local structs that carry exactly the
// fields these manifests use, strictly (unknown fields fail): the operators' Go modules would
// pull in controller-runtime for three types. A field added to a manifest must be added here.

// ScaledObject is KEDA's keda.sh/v1alpha1 ScaledObject, the fields used.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			MetricType        string            `json:"metricType,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// TriggerAuthentication is KEDA's keda.sh/v1alpha1 TriggerAuthentication, the fields used.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// ServiceMonitor is the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor, the
// fields used.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Relabelings   []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
			} `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// PrometheusRule is the Prometheus Operator's monitoring.coreos.com/v1 PrometheusRule.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleFile `json:"spec"`
}

// ruleFile is a Prometheus rule file (and a PrometheusRule's spec).
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert         string            `json:"alert,omitempty"`
			Record        string            `json:"record,omitempty"`
			Expr          string            `json:"expr"`
			For           string            `json:"for,omitempty"`
			KeepFiringFor string            `json:"keep_firing_for,omitempty"`
			Labels        map[string]string `json:"labels,omitempty"`
			Annotations   map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// rendered is one overlay's objects, decoded.
type rendered struct {
	deployments     map[string]*appsv1.Deployment
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	scaledObjects   []*ScaledObject
	triggerAuths    []*TriggerAuthentication
	serviceMonitors []*ServiceMonitor
	rules           []*PrometheusRule
}

// strict decodes JSON into v, failing on fields v does not have.
func strict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// render builds an overlay with the kustomize library, as `kubectl kustomize` does, and
// decodes each object strictly into its API type.
func render(t *testing.T, overlay string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	r := rendered{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, res := range m.Resources() {
		b, err := res.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", res.CurId(), err)
		}
		gvk := res.GetApiVersion() + " " + res.GetKind()
		var obj interface{ GetName() string }
		switch gvk {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			r.deployments[res.GetName()], obj = o, o
		case "v1 Service":
			o := &corev1.Service{}
			r.services[res.GetName()], obj = o, o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			r.configMaps[res.GetName()], obj = o, o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			r.pdbs, obj = append(r.pdbs, o), o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			r.hpas, obj = append(r.hpas, o), o
		case "keda.sh/v1alpha1 ScaledObject":
			o := &ScaledObject{}
			r.scaledObjects, obj = append(r.scaledObjects, o), o
		case "keda.sh/v1alpha1 TriggerAuthentication":
			o := &TriggerAuthentication{}
			r.triggerAuths, obj = append(r.triggerAuths, o), o
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o := &ServiceMonitor{}
			r.serviceMonitors, obj = append(r.serviceMonitors, o), o
		case "monitoring.coreos.com/v1 PrometheusRule":
			o := &PrometheusRule{}
			r.rules, obj = append(r.rules, o), o
		default:
			t.Errorf("%s: %s is a kind this test does not check; add it", overlay, gvk)
			continue
		}
		if err := strict(b, obj); err != nil {
			t.Errorf("%s: %s %s does not decode strictly: %v", overlay, gvk, res.GetName(), err)
		}
	}
	return r
}

func TestK8sManifests(t *testing.T) {
	t.Parallel()
	overlays, err := os.ReadDir(overlaysDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range overlays {
		if o.IsDir() {
			names = append(names, o.Name())
		}
	}
	if !slices.Contains(names, "dev") || !slices.Contains(names, "prod") {
		t.Fatalf("overlays %v, want at least dev and prod", names)
	}
	flags := map[string]flagSet{}
	for _, b := range binaries {
		flags[b] = flagsOf(t, b)
	}
	doc, err := os.ReadFile(k8sDoc)
	if err != nil {
		t.Fatalf("the manifests are documented in %s: %v", k8sDoc, err)
	}
	checkRuleFileInSync(t)
	for _, o := range names {
		t.Run(o, func(t *testing.T) {
			t.Parallel()
			r := render(t, filepath.Join(overlaysDir, o))
			checkOverlay(t, r, flags, string(doc))
		})
	}
}

// checkOverlay checks the invariants of one rendered overlay.
func checkOverlay(t *testing.T, r rendered, flags map[string]flagSet, doc string) {
	partitions := partitionCount(t, r)
	endpoints := r.configMaps["mlops-endpoints"]
	if endpoints == nil {
		t.Fatal("no ConfigMap mlops-endpoints")
	}
	for _, k := range []string{"KAFKA_BROKERS", "ES_URL", "REDIS_ADDR", "MLFLOW_URL"} {
		if endpoints.Data[k] == "" {
			t.Errorf("mlops-endpoints has no %s", k)
		}
	}
	if len(r.deployments) < 7 {
		t.Errorf("%d Deployments, want one per service (7 at least)", len(r.deployments))
	}
	scaled := map[string]string{} // Deployment -> its autoscaler
	for _, h := range r.hpas {
		ref := h.Spec.ScaleTargetRef
		d := r.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			t.Errorf("HPA %s targets %s %s %s, not a Deployment of the overlay", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		claimScale(t, scaled, ref.Name, "HPA "+h.Name)
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA %s: minReplicas %v, maxReplicas %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if consumesKafka(r, d) && int(h.Spec.MaxReplicas) > partitions {
			t.Errorf("HPA %s: maxReplicas %d > %d partitions for a Kafka consumer", h.Name, h.Spec.MaxReplicas, partitions)
		}
		if len(h.Spec.Metrics) == 0 {
			t.Errorf("HPA %s has no metric", h.Name)
		}
	}
	for _, so := range r.scaledObjects {
		d := r.deployments[so.Spec.ScaleTargetRef.Name]
		if d == nil || (so.Spec.ScaleTargetRef.Kind != "" && so.Spec.ScaleTargetRef.Kind != "Deployment") {
			t.Errorf("ScaledObject %s targets %q, not a Deployment of the overlay", so.Name, so.Spec.ScaleTargetRef.Name)
			continue
		}
		claimScale(t, scaled, d.Name, "ScaledObject "+so.Name)
		checkScaledObject(t, r, so, d, partitions, endpoints.Data["KAFKA_BROKERS"])
	}
	for name, d := range r.deployments {
		checkDeployment(t, r, d, flags, doc, scaled[name] != "")
	}
	for name, svc := range r.services {
		checkService(t, r, name, svc)
	}
	checkMonitoring(t, r)
}

func claimScale(t *testing.T, scaled map[string]string, deployment, by string) {
	t.Helper()
	if prev := scaled[deployment]; prev != "" {
		t.Errorf("Deployment %s is scaled by both %s and %s", deployment, prev, by)
	}
	scaled[deployment] = by
}

// partitionCount is the overlay's one partition count, and every copy of it must agree.
func partitionCount(t *testing.T, r rendered) int {
	t.Helper()
	cm := r.configMaps["mlops-kafka"]
	if cm == nil {
		t.Fatal("no ConfigMap mlops-kafka: the partition count belongs there")
	}
	p, err := strconv.Atoi(cm.Data["KAFKA_PARTITIONS"])
	if err != nil || p < 1 {
		t.Fatalf("mlops-kafka KAFKA_PARTITIONS %q: want a positive integer", cm.Data["KAFKA_PARTITIONS"])
	}
	for name, c := range r.configMaps {
		for _, k := range []string{"KAFKA_PARTITIONS"} {
			if v, ok := c.Data[k]; ok && v != cm.Data["KAFKA_PARTITIONS"] {
				t.Errorf("ConfigMap %s %s=%q, but mlops-kafka says %d partitions", name, k, v, p)
			}
		}
	}
	return p
}

// config is the environment a Deployment's container gets from ConfigMaps (envFrom, then env
// with configMapKeyRef or a value); secrets are left out.
func config(r rendered, d *appsv1.Deployment) map[string]string {
	out := map[string]string{}
	c := d.Spec.Template.Spec.Containers[0]
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && r.configMaps[ef.ConfigMapRef.Name] != nil {
			for k, v := range r.configMaps[ef.ConfigMapRef.Name].Data {
				out[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := r.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]; cm != nil {
				out[e.Name] = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		}
	}
	return out
}

// consumesKafka reports whether the Deployment joins a consumer group: every service does,
// except scoring with FEATURES_CONSUME=false (the synchronous API only).
func consumesKafka(r rendered, d *appsv1.Deployment) bool {
	return config(r, d)["FEATURES_CONSUME"] != "false"
}

// binaryOf is the service binary a Deployment runs: its image is mlops/<binary>[:tag].
func binaryOf(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	img := d.Spec.Template.Spec.Containers[0].Image
	name, _, _ := strings.Cut(img, ":")
	b, ok := strings.CutPrefix(name, "mlops/")
	if !ok || !slices.Contains(binaries, b) {
		t.Errorf("Deployment %s: image %q is not mlops/<one of %v>", d.Name, img, binaries)
		return ""
	}
	return b
}

func checkScaledObject(t *testing.T, r rendered, so *ScaledObject, d *appsv1.Deployment, partitions int, brokers string) {
	t.Helper()
	s := so.Spec
	if s.MaxReplicaCount == nil || s.MinReplicaCount == nil {
		t.Errorf("ScaledObject %s: min and max replica counts must be explicit", so.Name)
		return
	}
	if *s.MinReplicaCount < 1 || *s.MinReplicaCount > *s.MaxReplicaCount {
		t.Errorf("ScaledObject %s: minReplicaCount %d, maxReplicaCount %d (want 1 <= min <= max: a stream consumer never scales to zero, its lag gauge would vanish)", so.Name, *s.MinReplicaCount, *s.MaxReplicaCount)
	}
	if int(*s.MaxReplicaCount) > partitions {
		t.Errorf("ScaledObject %s: maxReplicaCount %d > %d partitions", so.Name, *s.MaxReplicaCount, partitions)
	}
	cfg := config(r, d)
	group := cfg["KAFKA_GROUP"]
	if group == "" {
		group = binaryOf(t, d) // kafkaio's default group is the service's flag set name
	}
	kafkaTriggers := 0
	for _, tr := range s.Triggers {
		switch tr.Type {
		case "kafka":
			kafkaTriggers++
			if ref := tr.AuthenticationRef; ref != nil {
				checkTriggerAuth(t, r, so.Name, ref.Name, ref.Kind)
			}
			md := tr.Metadata
			if md["bootstrapServers"] != brokers {
				t.Errorf("ScaledObject %s: bootstrapServers %q, mlops-endpoints KAFKA_BROKERS %q", so.Name, md["bootstrapServers"], brokers)
			}
			if md["consumerGroup"] != group {
				t.Errorf("ScaledObject %s: consumerGroup %q, but Deployment %s consumes in group %q", so.Name, md["consumerGroup"], d.Name, group)
			}
			if topic := md["topic"]; topic != "" && cfg["KAFKA_TOPICS"] != "" && !slices.Contains(strings.Split(cfg["KAFKA_TOPICS"], ","), topic) {
				t.Errorf("ScaledObject %s: topic %q is not among the Deployment's KAFKA_TOPICS %q", so.Name, topic, cfg["KAFKA_TOPICS"])
			}
			if md["allowIdleConsumers"] == "true" {
				t.Errorf("ScaledObject %s: allowIdleConsumers would scale past the partitions", so.Name)
			}
			if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
				t.Errorf("ScaledObject %s: lagThreshold %q", so.Name, md["lagThreshold"])
			}
		case "cpu", "memory":
			if tr.MetricType != "Utilization" || tr.Metadata["value"] == "" {
				t.Errorf("ScaledObject %s: %s trigger needs metricType Utilization and a value", so.Name, tr.Type)
			}
		default:
			t.Errorf("ScaledObject %s: trigger type %q not checked by this test", so.Name, tr.Type)
		}
	}
	if kafkaTriggers != 1 {
		t.Errorf("ScaledObject %s: %d kafka triggers, want 1", so.Name, kafkaTriggers)
	}
	if !consumesKafka(r, d) {
		t.Errorf("ScaledObject %s scales %s on lag, but it consumes nothing", so.Name, d.Name)
	}
}

// addrPort is the port of a listen address such as ":8081" or "127.0.0.1:8081".
func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("address %q: port: %v", addr, err)
	}
	return int32(n)
}

func checkDeployment(t *testing.T, r rendered, d *appsv1.Deployment, flags map[string]flagSet, doc string, autoscaled bool) {
	t.Helper()
	name := d.Name
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Errorf("Deployment %s: %d containers, want 1", name, len(spec.Containers))
		return
	}
	c := spec.Containers[0]
	bin := binaryOf(t, d)
	if bin == "" {
		return
	}
	fl := flags[bin]

	// Flags: every argument is a flag of the binary; the admin and gRPC addresses decide the
	// container ports, which the probes and the Service use.
	addrs := map[string]string{"admin.addr": fl.adminAddr, "grpc.addr": fl.grpcAddr}
	for _, a := range c.Args {
		f, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !ok || !strings.HasPrefix(a, "-") {
			t.Errorf("Deployment %s: argument %q: write flags as -name=value", name, a)
			continue
		}
		if !fl.flags[f] {
			t.Errorf("Deployment %s: %s has no flag -%s", name, bin, f)
		}
		if _, isAddr := addrs[f]; isAddr {
			addrs[f] = v
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := addrPort(t, addrs["admin.addr"]); ports["admin"] != want {
		t.Errorf("Deployment %s: container port admin %d, but %s listens on %s", name, ports["admin"], bin, addrs["admin.addr"])
	}
	if host, _, _ := net.SplitHostPort(addrs["admin.addr"]); host == "127.0.0.1" || host == "localhost" {
		t.Errorf("Deployment %s: admin address %s is loopback: probes and scrapes cannot reach it", name, addrs["admin.addr"])
	}
	if fl.grpcAddr == "" {
		if _, ok := ports["grpc"]; ok {
			t.Errorf("Deployment %s: port grpc, but %s serves no gRPC", name, bin)
		}
	} else {
		if want := addrPort(t, addrs["grpc.addr"]); ports["grpc"] != want {
			t.Errorf("Deployment %s: container port grpc %d, but %s listens on %s", name, ports["grpc"], bin, addrs["grpc.addr"])
		}
		if host, _, _ := net.SplitHostPort(addrs["grpc.addr"]); host == "127.0.0.1" || host == "localhost" {
			t.Errorf("Deployment %s: gRPC address %s is loopback", name, addrs["grpc.addr"])
		}
	}

	// Probes on the admin port: liveness /healthz, readiness /readyz.
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("Deployment %s: no HTTP %s probe", name, p.kind)
			continue
		}
		g := p.probe.HTTPGet
		port := g.Port.IntVal
		if g.Port.StrVal != "" {
			port = ports[g.Port.StrVal]
		}
		if g.Path != p.path || port == 0 || port != ports["admin"] {
			t.Errorf("Deployment %s: %s probe GET %s on port %s, want %s on the admin port %d", name, p.kind, g.Path, g.Port.String(), p.path, ports["admin"])
		}
	}

	// Resources: requests and limits of CPU and memory.
	for _, rl := range []struct {
		kind string
		list corev1.ResourceList
	}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := rl.list[res]; !ok || q.IsZero() {
				t.Errorf("Deployment %s: no %s %s", name, res, rl.kind)
			}
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.Cmp(lim) > 0 {
			t.Errorf("Deployment %s: %s request %s above its limit %s", name, res, req.String(), lim.String())
		}
	}

	// Security: non-root, read-only root file system, no capabilities, RuntimeDefault seccomp.
	psc, csc := spec.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || csc == nil:
		t.Errorf("Deployment %s: pod and container securityContext required", name)
	default:
		if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("Deployment %s: pod must set runAsNonRoot and a non-zero numeric runAsUser (images name their user, which the kubelet cannot verify)", name)
		}
		if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("Deployment %s: pod seccompProfile must be RuntimeDefault", name)
		}
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Errorf("Deployment %s: readOnlyRootFilesystem must be true", name)
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Errorf("Deployment %s: allowPrivilegeEscalation must be false", name)
		}
		if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
			t.Errorf("Deployment %s: capabilities must drop ALL and add none", name)
		}
		if csc.Privileged != nil && *csc.Privileged {
			t.Errorf("Deployment %s: privileged", name)
		}
	}

	// Environment: every variable is one the binary reads, from a ConfigMap of the overlay or
	// a Secret that docs/k8s.md tells how to create.
	cfg := config(r, d)
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || r.configMaps[ef.ConfigMapRef.Name] == nil {
			t.Errorf("Deployment %s: envFrom must name a ConfigMap of the overlay: %+v", name, ef)
			continue
		}
		for k := range r.configMaps[ef.ConfigMapRef.Name].Data {
			if !fl.envs[ef.Prefix+k] {
				t.Errorf("Deployment %s: ConfigMap %s sets %s, which %s does not read", name, ef.ConfigMapRef.Name, k, bin)
			}
		}
	}
	for _, e := range c.Env {
		if !fl.envs[e.Name] {
			t.Errorf("Deployment %s: env %s, which %s does not read", name, e.Name, bin)
		}
		if e.ValueFrom == nil {
			continue
		}
		if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
			if cm := r.configMaps[ref.Name]; cm == nil || cm.Data[ref.Key] == "" {
				t.Errorf("Deployment %s: env %s from ConfigMap %s key %s, which the overlay does not define", name, e.Name, ref.Name, ref.Key)
			}
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil && !strings.Contains(doc, ref.Name) {
			t.Errorf("Deployment %s: env %s from Secret %s, which docs/k8s.md does not mention (say how to create it)", name, e.Name, ref.Name)
		}
	}
	for _, k := range []string{"ADMIN_ADDR", "GRPC_ADDR"} {
		if _, ok := cfg[k]; ok {
			t.Errorf("Deployment %s: set %s with the -%s argument, which the port checks read", name, k, strings.ToLower(strings.ReplaceAll(k, "_", ".")))
		}
	}

	// Graceful shutdown: the grace period covers the preStop pause and the drain.
	shutdown := durationOr(t, name, cfg["SHUTDOWN_TIMEOUT"], 20*time.Second)
	if kafka := durationOr(t, name, cfg["KAFKA_SHUTDOWN_TIMEOUT"], 10*time.Second); kafka > shutdown {
		t.Errorf("Deployment %s: KAFKA_SHUTDOWN_TIMEOUT %v exceeds SHUTDOWN_TIMEOUT %v", name, kafka, shutdown)
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace := 30 * time.Second
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	if grace < preStop+shutdown+2*time.Second {
		t.Errorf("Deployment %s: terminationGracePeriodSeconds %v < preStop %v + SHUTDOWN_TIMEOUT %v + 2s", name, grace, preStop, shutdown)
	}

	// Writable paths: with a read-only root, /tmp and any cache directory need a volume.
	mounts := map[string]bool{}
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
	}
	for _, m := range c.VolumeMounts {
		if !vols[m.Name] {
			t.Errorf("Deployment %s: mount %s of a missing volume", name, m.Name)
		}
		mounts[m.MountPath] = !m.ReadOnly
	}
	if !mounts["/tmp"] {
		t.Errorf("Deployment %s: no writable /tmp volume under a read-only root", name)
	}
	if dir, ok := cfg["MODEL_CACHE_DIR"]; ok && !mounts[dir] {
		t.Errorf("Deployment %s: MODEL_CACHE_DIR %s is not a writable volume mount", name, dir)
	}

	// Placement and disruption: topology spread, a PDB, and no replica count fighting an
	// autoscaler.
	if len(spec.TopologySpreadConstraints) == 0 {
		t.Errorf("Deployment %s: no topologySpreadConstraints", name)
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	for _, tsc := range spec.TopologySpreadConstraints {
		if sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector); err != nil || !sel.Matches(podLabels) {
			t.Errorf("Deployment %s: topology spread on %s does not select the pods", name, tsc.TopologyKey)
		}
	}
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		t.Errorf("Deployment %s: selector does not match its pod template", name)
	}
	pdbs := 0
	for _, p := range r.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Errorf("PDB %s: %v", p.Name, err)
			continue
		}
		if p.Namespace == d.Namespace && sel.Matches(podLabels) {
			pdbs++
			if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
				t.Errorf("PDB %s sets neither minAvailable nor maxUnavailable", p.Name)
			}
		}
	}
	if pdbs != 1 {
		t.Errorf("Deployment %s: %d PodDisruptionBudgets select its pods, want 1", name, pdbs)
	}
	if autoscaled && d.Spec.Replicas != nil {
		t.Errorf("Deployment %s: spec.replicas is set but an autoscaler owns the count (every apply would reset it)", name)
	}
}

func durationOr(t *testing.T, name, s string, def time.Duration) time.Duration {
	t.Helper()
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("Deployment %s: duration %q: %v", name, s, err)
	}
	return d
}

// checkService: the Service selects exactly one Deployment's pods and each port targets one
// of its container ports.
func checkService(t *testing.T, r rendered, name string, svc *corev1.Service) {
	t.Helper()
	var target *appsv1.Deployment
	for _, d := range r.deployments {
		if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			if target != nil {
				t.Errorf("Service %s selects the pods of %s and %s", name, target.Name, d.Name)
			}
			target = d
		}
	}
	if target == nil {
		t.Errorf("Service %s selects no Deployment's pods", name)
		return
	}
	cports := map[string]int32{}
	for _, p := range target.Spec.Template.Spec.Containers[0].Ports {
		cports[p.Name] = p.ContainerPort
	}
	for _, p := range svc.Spec.Ports {
		tp := p.TargetPort.IntVal
		if p.TargetPort.StrVal != "" {
			tp = cports[p.TargetPort.StrVal]
		}
		if tp == 0 || cports[p.Name] != tp {
			t.Errorf("Service %s port %s (%d -> %s) does not reach container port %s of %s", name, p.Name, p.Port, p.TargetPort.String(), p.Name, target.Name)
		}
	}
	if _, ok := cports["admin"]; ok && !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "admin" }) {
		t.Errorf("Service %s has no port admin: the ServiceMonitor scrapes through it", name)
	}
}

// checkMonitoring: one ServiceMonitor scrapes every Service on its admin port and labels the
// series with service=<name>; the PrometheusRule carries the repository's rule files.
func checkMonitoring(t *testing.T, r rendered) {
	t.Helper()
	if len(r.serviceMonitors) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(r.serviceMonitors))
	}
	sm := r.serviceMonitors[0]
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatalf("ServiceMonitor %s: %v", sm.Name, err)
	}
	for name, svc := range r.services {
		if !sel.Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor %s does not select Service %s", sm.Name, name)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor %s endpoints %+v, want port admin path /metrics", sm.Name, sm.Spec.Endpoints)
	} else if !slices.ContainsFunc(sm.Spec.Endpoints[0].Relabelings, func(rl struct {
		SourceLabels []string `json:"sourceLabels"`
		TargetLabel  string   `json:"targetLabel"`
	}) bool {
		return rl.TargetLabel == "service"
	}) {
		t.Errorf("ServiceMonitor %s sets no service label: the alert rules group by it", sm.Name)
	}
	if len(r.rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(r.rules))
	}
	if got, want := r.rules[0].Spec, loadRuleFiles(t); !reflect.DeepEqual(got, want) {
		t.Errorf("PrometheusRule %s differs from %s: run: cd deploy && go test -run TestK8sManifests -update .", r.rules[0].Name, rulesGlob)
	}
	dashboards, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboards under %s: %v", dashboardsDir, err)
	}
	for _, f := range dashboards {
		base := filepath.Base(f)
		found := false
		for _, cm := range r.configMaps {
			if _, ok := cm.Data[base]; ok && cm.Labels["grafana_dashboard"] == "1" {
				found = true
			}
		}
		if !found {
			t.Errorf("dashboard %s is not in a ConfigMap labelled grafana_dashboard=1", base)
		}
	}
}

// loadRuleFiles decodes the repository's Prometheus rule files, strictly, into one spec.
func loadRuleFiles(t *testing.T) ruleFile {
	t.Helper()
	files, err := filepath.Glob(rulesGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files %s: %v", rulesGlob, err)
	}
	var all ruleFile
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var rf ruleFile
		if err := strict(j, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all.Groups = append(all.Groups, rf.Groups...)
	}
	return all
}

// checkRuleFileInSync rewrites the PrometheusRule from the rule files under -update; without
// it, the overlays' check compares them.
func checkRuleFileInSync(t *testing.T) {
	t.Helper()
	if !*update {
		return
	}
	spec := loadRuleFiles(t)
	pr := PrometheusRule{TypeMeta: metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule"}}
	pr.Name = "mlops"
	pr.Labels = map[string]string{"app.kubernetes.io/part-of": "mlops"}
	pr.Spec = spec
	j, err := json.Marshal(pr)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	// creationTimestamp: null is what an empty ObjectMeta marshals to; it is not a manifest field.
	y = bytes.ReplaceAll(y, []byte("  creationTimestamp: null\n"), nil)
	head := "# Generated from deploy/prometheus/rules/*.yml by `cd deploy && go test -run TestK8sManifests -update .`;\n" +
		"# edit the rule files (and their promtool tests), not this file. TestK8sManifests fails when they differ.\n"
	if err := os.WriteFile(prometheusRuleFile, append([]byte(head), y...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkTriggerAuth checks that a Kafka trigger's authenticationRef names a TriggerAuthentication
// of the overlay that takes the SASL credentials from the Secret the services read theirs from.
func checkTriggerAuth(t *testing.T, r rendered, scaled, name, kind string) {
	t.Helper()
	if kind != "" && kind != "TriggerAuthentication" {
		t.Errorf("ScaledObject %s: authenticationRef kind %q not checked by this test", scaled, kind)
		return
	}
	for _, ta := range r.triggerAuths {
		if ta.Name != name {
			continue
		}
		params := map[string]bool{}
		for _, ref := range ta.Spec.SecretTargetRef {
			params[ref.Parameter] = true
			if ref.Name != "mlops-kafka-sasl" {
				t.Errorf("TriggerAuthentication %s: parameter %s from Secret %q, want mlops-kafka-sasl (the services' Kafka credentials)", name, ref.Parameter, ref.Name)
			}
		}
		for _, p := range []string{"sasl", "username", "password"} {
			if !params[p] {
				t.Errorf("TriggerAuthentication %s: no %s parameter", name, p)
			}
		}
		return
	}
	t.Errorf("ScaledObject %s: authenticationRef %q names no TriggerAuthentication of the overlay", scaled, name)
}
