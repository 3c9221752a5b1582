package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
)

// CallerLabel is the pod label the NetworkPolicy admits to the service's gRPC port.
const CallerLabel = "handshaker.dev/caller"

// ExternalSecrets are Secrets the manifests mount that no Certificate in them makes:
// the operator creates them (README, Kubernetes). Any other Secret volume must be a
// Certificate's secretName, so a typo in either is caught.
var ExternalSecrets = map[string]bool{"handshaker-session-keys": true}

// Objects are the typed forms of one render.
type Objects struct {
	Deployments     []Typed[appsv1.Deployment]
	Services        []Typed[corev1.Service]
	ConfigMaps      []Typed[corev1.ConfigMap]
	PDBs            []Typed[policyv1.PodDisruptionBudget]
	NetworkPolicies []Typed[networkingv1.NetworkPolicy]
	Certificates    []Typed[Certificate]
	Issuers         []Typed[Issuer]
}

// Typed is a decoded object and the Doc it came from (for messages).
type Typed[T any] struct {
	Doc Doc
	Obj T
}

// strictDecode decodes a Doc into a typed object as the API server's strict field
// validation would: unknown fields, duplicate fields and case mismatches are errors.
func strictDecode[T any](doc Doc, into *T) error {
	data, err := json.Marshal(doc.Obj)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(data, into)
	if err != nil {
		return fmt.Errorf("%s: %w", doc, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%s: %w", doc, errors.Join(strict...))
	}
	return nil
}

func add[T any](list *[]Typed[T], doc Doc) error {
	var obj T
	if err := strictDecode(doc, &obj); err != nil {
		return err
	}
	*list = append(*list, Typed[T]{Doc: doc, Obj: obj})
	return nil
}

// Decode types every Doc; a kind the validator does not know is an error too.
func Decode(docs []Doc) (Objects, []error) {
	var objects Objects
	var errs []error
	for _, doc := range docs {
		var err error
		switch doc.Kind() {
		case "v1 Namespace":
			var ns corev1.Namespace
			err = strictDecode(doc, &ns)
		case "v1 ConfigMap":
			err = add(&objects.ConfigMaps, doc)
		case "v1 Service":
			err = add(&objects.Services, doc)
		case "apps/v1 Deployment":
			err = add(&objects.Deployments, doc)
		case "policy/v1 PodDisruptionBudget":
			err = add(&objects.PDBs, doc)
		case "networking.k8s.io/v1 NetworkPolicy":
			err = add(&objects.NetworkPolicies, doc)
		case "cert-manager.io/v1 Certificate":
			err = add(&objects.Certificates, doc)
		case "cert-manager.io/v1 ClusterIssuer", "cert-manager.io/v1 Issuer":
			err = add(&objects.Issuers, doc)
		default:
			err = fmt.Errorf("%s: kind %q is not one the validator knows (add it to Decode)", doc, doc.Kind())
		}
		if err != nil {
			errs = append(errs, err)
		}
		if doc.str("metadata", "name") == "" {
			errs = append(errs, fmt.Errorf("%s: no metadata.name", doc))
		}
	}
	return objects, errs
}

// Validate decodes a render and checks the deployment policies on it.
func Validate(docs []Doc, expect Expect) []error {
	objects, errs := Decode(docs)
	if len(errs) > 0 {
		return errs // the policies read typed objects: fix the decoding first
	}
	v := &validator{objects: objects, expect: expect}
	if len(objects.Deployments) == 0 {
		v.fail(fmt.Errorf("%s: no Deployment", docs[0].Source))
	}
	for _, d := range objects.Deployments {
		v.deployment(d)
	}
	for _, c := range objects.Certificates {
		v.certificate(c)
	}
	for _, i := range objects.Issuers {
		v.issuer(i)
	}
	return v.errs
}

type validator struct {
	objects Objects
	expect  Expect
	errs    []error
}

func (v *validator) fail(err error) { v.errs = append(v.errs, err) }

func (v *validator) failf(where fmt.Stringer, format string, args ...any) {
	v.fail(fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

// --- Deployments and their pods -------------------------------------------------------

type containerRef struct {
	deployment Doc
	name       string
}

func (c containerRef) String() string { return fmt.Sprintf("%s container %s", c.deployment, c.name) }

func (v *validator) deployment(t Typed[appsv1.Deployment]) {
	d, pod := t.Obj, t.Obj.Spec.Template.Spec
	where := t.Doc
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		v.failf(where, "automountServiceAccountToken must be false (the pods need no API token)")
	}
	if d.Spec.Selector == nil {
		v.failf(where, "no selector")
		return
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !selector.Matches(labels.Set(d.Spec.Template.Labels)) {
		v.failf(where, "the selector does not match the pod template's labels")
	}
	volumes := map[string]corev1.Volume{}
	for _, volume := range pod.Volumes {
		volumes[volume.Name] = volume
		v.volume(where, volume)
	}
	type entry struct {
		c           corev1.Container
		longRunning bool
	}
	var all []entry
	for _, c := range pod.InitContainers {
		all = append(all, entry{c, c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways})
	}
	for _, c := range pod.Containers {
		all = append(all, entry{c, true})
	}
	for _, e := range all {
		ref := containerRef{where, e.c.Name}
		v.container(ref, pod, e.c, e.longRunning, volumes)
		if imageName(e.c.Image) == imageName(v.expect.Image) || e.c.Name == "handshaker" {
			v.handshakerContainer(t, ref, pod, e.c, volumes)
		}
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas > 1 && !v.hasPDB(t) {
		v.failf(where, "%d replicas and no PodDisruptionBudget that selects them", replicas)
	}
	if len(v.policiesFor(t, networkingv1.PolicyTypeIngress)) == 0 {
		v.failf(where, "no NetworkPolicy with Ingress selects its pods")
	}
}

func (v *validator) volume(where Doc, volume corev1.Volume) {
	switch {
	case volume.Secret != nil:
		name := volume.Secret.SecretName
		if ExternalSecrets[name] {
			return
		}
		for _, c := range v.objects.Certificates {
			if c.Obj.Spec.SecretName == name && c.Obj.Metadata.Namespace == where.str("metadata", "namespace") {
				return
			}
		}
		v.failf(where, "volume %s: Secret %s is made by no Certificate here (nor listed in ExternalSecrets)",
			volume.Name, name)
	case volume.ConfigMap != nil:
		for _, cm := range v.objects.ConfigMaps {
			if cm.Obj.Name == volume.ConfigMap.Name {
				return
			}
		}
		v.failf(where, "volume %s: ConfigMap %s is not in the render", volume.Name, volume.ConfigMap.Name)
	}
}

// container: the restricted Pod Security Standard and more, on every container.
func (v *validator) container(ref containerRef, pod corev1.PodSpec, c corev1.Container, longRunning bool,
	volumes map[string]corev1.Volume) {
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		v.failf(ref, "runAsNonRoot must be true")
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if uid == nil {
		v.failf(ref, "no numeric runAsUser (runAsNonRoot cannot check an image's named user)")
	} else if *uid == 0 {
		v.failf(ref, "runAsUser 0 is root")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		v.failf(ref, "readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		v.failf(ref, "allowPrivilegeEscalation must be false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		v.failf(ref, "privileged")
	}
	dropsAll := false
	if sc.Capabilities != nil {
		for _, capability := range sc.Capabilities.Drop {
			dropsAll = dropsAll || capability == "ALL"
		}
		if len(sc.Capabilities.Add) > 0 {
			v.failf(ref, "adds capabilities %v", sc.Capabilities.Add)
		}
	}
	if !dropsAll {
		v.failf(ref, "capabilities must drop ALL")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		v.failf(ref, "seccompProfile must be RuntimeDefault")
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[name]; !ok {
			v.failf(ref, "no %s request", name)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		v.failf(ref, "no memory limit")
	}
	if longRunning && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
		v.failf(ref, "needs a readinessProbe and a livenessProbe")
	}
	if c.Image == "" || !strings.Contains(c.Image[strings.LastIndex(c.Image, "/")+1:], ":") ||
		strings.HasSuffix(c.Image, ":latest") {
		v.failf(ref, "image %q: name a version, not latest or none", c.Image)
	}
	for _, mount := range c.VolumeMounts {
		volume, ok := volumes[mount.Name]
		if !ok {
			v.failf(ref, "mounts %s, which is not a volume of the pod", mount.Name)
			continue
		}
		if (volume.Secret != nil || volume.ConfigMap != nil) && !mount.ReadOnly {
			v.failf(ref, "mount %s of a Secret or ConfigMap must be readOnly", mount.Name)
		}
	}
}

// serveFlags are the `--flag=value` / `--flag value` arguments of handshaker serve.
func serveFlags(args []string) map[string]string {
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "--") {
			continue
		}
		if name, value, ok := strings.Cut(arg, "="); ok {
			flags[name] = value
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			flags[arg] = args[i+1]
			i++
		} else {
			flags[arg] = ""
		}
	}
	return flags
}

func hostPort(address string) (string, int, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT", address)
	}
	number, err := strconv.Atoi(port)
	if err != nil || number <= 0 || number > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", address)
	}
	return host, number, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// handshakerContainer: the image deploy/Dockerfile builds, its user, and for `serve`
// the probes, the listeners and the session store.
func (v *validator) handshakerContainer(t Typed[appsv1.Deployment], ref containerRef, pod corev1.PodSpec,
	c corev1.Container, volumes map[string]corev1.Volume) {
	if c.Image != v.expect.Image {
		v.failf(ref, "image %q is not %q, the image deploy/Dockerfile builds", c.Image, v.expect.Image)
	}
	var uid *int64
	if pod.SecurityContext != nil {
		uid = pod.SecurityContext.RunAsUser
	}
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		uid = c.SecurityContext.RunAsUser
	}
	if uid != nil && *uid != v.expect.UID {
		v.failf(ref, "runAsUser %d is not the image's USER %d", *uid, v.expect.UID)
	}
	hasTmp := false
	for _, mount := range c.VolumeMounts {
		if mount.MountPath == "/tmp" && volumes[mount.Name].EmptyDir != nil {
			hasTmp = true
		}
	}
	if !hasTmp {
		v.failf(ref, "no emptyDir at /tmp (the root filesystem is read-only)")
	}
	if len(c.Command) > 0 && !(len(c.Command) >= 2 && c.Command[0] == "handshaker" && c.Command[1] == "serve") {
		return // another handshaker command (terminate, connect) in the same image
	}
	flags := serveFlags(c.Args)
	where := ref.String()
	for _, flag := range sortedKeys(flags) {
		if v.expect.ServeFlags != nil && !v.expect.ServeFlags[flag] {
			v.failf(ref, "handshaker serve has no option %s", flag)
		}
	}

	// Probes: kubelet-native gRPC health checks on the plaintext health listener.
	health, ok := flags["--health-listen"]
	if !ok {
		v.failf(ref, "serve without --health-listen: the kubelet's gRPC probes need a plaintext port")
		return
	}
	_, healthPort, err := hostPort(health)
	if err != nil {
		v.failf(ref, "--health-listen %s", err)
		return
	}
	declared := false
	for _, port := range c.Ports {
		declared = declared || int(port.ContainerPort) == healthPort
	}
	if !declared {
		v.failf(ref, "the health port %d is not among its ports", healthPort)
	}
	for name, probe := range map[string]*corev1.Probe{
		"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe,
	} {
		if probe == nil {
			continue
		}
		if probe.GRPC == nil || int(probe.GRPC.Port) != healthPort {
			v.failf(ref, "%s must be a grpc probe on the health port %d", name, healthPort)
		} else if probe.GRPC.Service != nil && *probe.GRPC.Service != "" &&
			*probe.GRPC.Service != "handshaker.v1.Handshaker" {
			v.failf(ref, "%s asks for the health of %q, which the service does not report", name, *probe.GRPC.Service)
		}
	}

	// Where it listens.
	listen := flags["--listen"]
	if listen == "" {
		v.failf(ref, "serve without --listen")
		return
	}
	if strings.HasPrefix(listen, "unix:") {
		v.unixSocket(ref, pod, strings.TrimPrefix(strings.TrimPrefix(listen, "unix:"), "//"), volumes)
		return
	}
	host, port, err := hostPort(listen)
	if err != nil {
		v.failf(ref, "--listen %s", err)
		return
	}
	if port == healthPort {
		v.failf(ref, "--listen and --health-listen share port %d", port)
	}
	if !isLoopback(host) {
		for _, flag := range []string{"--tls-cert", "--tls-key", "--tls-client-ca"} {
			if flags[flag] == "" {
				v.failf(ref, "listens on %s without %s: off loopback the channel must be mutual TLS", listen, flag)
			}
		}
		if _, insecure := flags["--insecure"]; insecure {
			v.failf(ref, "--insecure")
		}
		v.networkPolicy(t, where, port, healthPort)
		v.services(t, where, healthPort)
		v.grpcCertificate(t, ref, c, flags["--tls-cert"], volumes)
	}
	replicas := int32(1)
	if t.Obj.Spec.Replicas != nil {
		replicas = *t.Obj.Spec.Replicas
	}
	store := flags["--session-store"]
	if replicas > 1 && !(strings.HasPrefix(store, "redis://") || strings.HasPrefix(store, "rediss://") ||
		strings.HasPrefix(store, "unix://")) {
		v.failf(ref, "%d replicas with the session store %q: the unary API needs --session-store "+
			"redis://... shared by the replicas", replicas, store)
	}
	if strings.HasPrefix(store, "redis") {
		v.redis(ref, store)
	}
	if keystore := flags["--keystore"]; keystore != "" {
		writable := false
		for _, mount := range c.VolumeMounts {
			if mount.MountPath == strings.TrimPrefix(keystore, "dir:") && volumes[mount.Name].EmptyDir != nil {
				writable = true
			}
		}
		if !writable {
			v.failf(ref, "the keystore %s is not an emptyDir mount (the service writes there)", keystore)
		}
	}
}

// unixSocket: the socket's folder is an emptyDir that another container mounts too.
func (v *validator) unixSocket(ref containerRef, pod corev1.PodSpec, socket string, volumes map[string]corev1.Volume) {
	dir := path.Dir(socket)
	var volume string
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		if c.Name != ref.name {
			continue
		}
		for _, mount := range c.VolumeMounts {
			if mount.MountPath == dir {
				volume = mount.Name
			}
		}
	}
	if volume == "" || volumes[volume].EmptyDir == nil {
		v.failf(ref, "the socket folder %s is not an emptyDir mount", dir)
		return
	}
	shared := false
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		if c.Name == ref.name {
			continue
		}
		for _, mount := range c.VolumeMounts {
			shared = shared || mount.Name == volume
		}
	}
	if !shared {
		v.failf(ref, "no other container mounts the socket's volume %s: nobody can call it", volume)
	}
}

func podLabels(t Typed[appsv1.Deployment]) labels.Set { return labels.Set(t.Obj.Spec.Template.Labels) }

func namespaceOf(d Doc) string { return d.str("metadata", "namespace") }

func (v *validator) hasPDB(t Typed[appsv1.Deployment]) bool {
	for _, p := range v.objects.PDBs {
		if namespaceOf(p.Doc) != namespaceOf(t.Doc) || p.Obj.Spec.Selector == nil {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(p.Obj.Spec.Selector)
		if err == nil && !selector.Empty() && selector.Matches(podLabels(t)) {
			return true
		}
	}
	return false
}

func (v *validator) policiesFor(t Typed[appsv1.Deployment], kind networkingv1.PolicyType) []networkingv1.NetworkPolicy {
	var found []networkingv1.NetworkPolicy
	for _, p := range v.objects.NetworkPolicies {
		if namespaceOf(p.Doc) != namespaceOf(t.Doc) {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(&p.Obj.Spec.PodSelector)
		if err != nil || !selector.Matches(podLabels(t)) {
			continue
		}
		types := p.Obj.Spec.PolicyTypes
		if len(types) == 0 {
			types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		}
		for _, policyType := range types {
			if policyType == kind {
				found = append(found, p.Obj)
			}
		}
	}
	return found
}

func rulePortCovers(ports []networkingv1.NetworkPolicyPort, port int) bool {
	if len(ports) == 0 {
		return true // no ports: every port
	}
	for _, p := range ports {
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.Int {
			end := int(p.Port.IntVal)
			if p.EndPort != nil {
				end = int(*p.EndPort)
			}
			if port >= int(p.Port.IntVal) && port <= end {
				return true
			}
		}
	}
	return false
}

// networkPolicy: only pods labelled handshaker.dev/caller: "true" reach the mTLS port; the
// health port is admitted (for the kubelet).
func (v *validator) networkPolicy(t Typed[appsv1.Deployment], where string, grpcPort, healthPort int) {
	healthAdmitted := false
	for _, policy := range v.policiesFor(t, networkingv1.PolicyTypeIngress) {
		for i, rule := range policy.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port != nil && port.Port.Type == intstr.String {
					v.failf(stringer(where), "NetworkPolicy %s ingress %d: name ports by number", policy.Name, i)
				}
			}
			if rulePortCovers(rule.Ports, healthPort) {
				healthAdmitted = true
			}
			if !rulePortCovers(rule.Ports, grpcPort) {
				continue
			}
			if len(rule.From) == 0 {
				v.failf(stringer(where), "NetworkPolicy %s ingress %d admits everyone to the gRPC port %d",
					policy.Name, i, grpcPort)
			}
			for _, peer := range rule.From {
				if peer.IPBlock != nil || peer.PodSelector == nil ||
					peer.PodSelector.MatchLabels[CallerLabel] != "true" {
					v.failf(stringer(where), "NetworkPolicy %s ingress %d admits to the gRPC port %d a peer "+
						"that is not a pod labelled %s: \"true\"", policy.Name, i, grpcPort, CallerLabel)
				}
			}
		}
	}
	if !healthAdmitted {
		v.failf(stringer(where), "no NetworkPolicy rule admits the health port %d", healthPort)
	}
}

// services: a Service selects the pods, and none of them exposes the health port.
func (v *validator) services(t Typed[appsv1.Deployment], where string, healthPort int) {
	selected := false
	for _, s := range v.objects.Services {
		if namespaceOf(s.Doc) != namespaceOf(t.Doc) || len(s.Obj.Spec.Selector) == 0 ||
			!labels.SelectorFromSet(s.Obj.Spec.Selector).Matches(podLabels(t)) {
			continue
		}
		selected = true
		for _, port := range s.Obj.Spec.Ports {
			target := port.TargetPort
			if (target.Type == intstr.Int && int(target.IntVal) == healthPort) ||
				(target.Type == intstr.String && target.StrVal == "health") ||
				(target.IntVal == 0 && target.StrVal == "" && int(port.Port) == healthPort) {
				v.failf(stringer(where), "Service %s exposes the health port", s.Obj.Name)
			}
		}
	}
	if !selected {
		v.failf(stringer(where), "no Service selects its pods")
	}
}

// redis: a Redis Service of the URL's host in the render (if there is one) has its port
// and selects pods of a Deployment.
func (v *validator) redis(ref containerRef, store string) {
	u, err := url.Parse(store)
	if err != nil || u.Hostname() == "" {
		v.failf(ref, "--session-store %q is not a redis URL", store)
		return
	}
	name := strings.SplitN(u.Hostname(), ".", 2)[0]
	port := 6379
	if u.Port() != "" {
		port, _ = strconv.Atoi(u.Port())
	}
	for _, s := range v.objects.Services {
		if s.Obj.Name != name {
			continue
		}
		hasPort := false
		for _, p := range s.Obj.Spec.Ports {
			hasPort = hasPort || int(p.Port) == port
		}
		if !hasPort {
			v.failf(ref, "Service %s has no port %d for %s", name, port, store)
		}
		backed := s.Obj.Spec.Type == corev1.ServiceTypeExternalName
		for _, d := range v.objects.Deployments {
			if len(s.Obj.Spec.Selector) > 0 && labels.SelectorFromSet(s.Obj.Spec.Selector).Matches(podLabels(d)) {
				backed = true
			}
		}
		if !backed {
			v.failf(ref, "Service %s (the session store) selects no Deployment's pods", name)
		}
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// grpcCertificate: --tls-cert is a Certificate's Secret, for server auth, and names each
// Service that selects the pods (NAME.NAMESPACE.svc), which callers dial.
func (v *validator) grpcCertificate(t Typed[appsv1.Deployment], ref containerRef, c corev1.Container,
	tlsCert string, volumes map[string]corev1.Volume) {
	var secret string
	for _, mount := range c.VolumeMounts {
		if mount.MountPath == path.Dir(tlsCert) && volumes[mount.Name].Secret != nil {
			secret = volumes[mount.Name].Secret.SecretName
		}
	}
	if secret == "" {
		v.failf(ref, "--tls-cert %s is not in a mounted Secret", tlsCert)
		return
	}
	for _, cert := range v.objects.Certificates {
		if cert.Obj.Spec.SecretName != secret || cert.Obj.Metadata.Namespace != namespaceOf(t.Doc) {
			continue
		}
		if !slices.Contains(cert.Obj.Spec.Usages, "server auth") {
			v.failf(cert.Doc, "the service's gRPC certificate needs the usage server auth")
		}
		for _, s := range v.objects.Services {
			if namespaceOf(s.Doc) != namespaceOf(t.Doc) || len(s.Obj.Spec.Selector) == 0 ||
				!labels.SelectorFromSet(s.Obj.Spec.Selector).Matches(podLabels(t)) {
				continue
			}
			name := s.Obj.Name + "." + s.Obj.Namespace + ".svc"
			if !slices.Contains(cert.Obj.Spec.DNSNames, name) {
				v.failf(cert.Doc, "dnsNames lack %s, the Service callers dial", name)
			}
		}
		return
	}
	// volume() already reports a Secret that no Certificate makes.
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}
