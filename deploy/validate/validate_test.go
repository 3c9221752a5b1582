package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const root = "../.."

func expectOf(t *testing.T) Expect {
	t.Helper()
	expect, err := ReadExpect(root)
	if err != nil {
		t.Fatal(err)
	}
	return expect
}

func render(t *testing.T, dir string) []Doc {
	t.Helper()
	docs, err := Render(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestTheTreeIsValid: what run.sh checks, so `go test` alone fails on a bad manifest too.
func TestTheTreeIsValid(t *testing.T) {
	expect := expectOf(t)
	if expect.Image != "handshaker:0.1.0" || expect.UID != 10001 {
		t.Fatalf("deploy/Dockerfile builds %s as uid %d", expect.Image, expect.UID)
	}
	dirs, err := Kustomizations(root, "deploy/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"deploy/kubernetes/base", "deploy/kubernetes/overlays/dev",
		"deploy/kubernetes/overlays/redis", "deploy/kubernetes/sidecar"}
	if strings.Join(dirs, " ") != strings.Join(want, " ") {
		t.Fatalf("kustomizations %v, want %v", dirs, want)
	}
	for _, dir := range dirs {
		if errs := Validate(render(t, dir), expect); len(errs) > 0 {
			t.Errorf("%s: %v", dir, errors.Join(errs...))
		}
	}
	if errs := ValidateCompose(root, expect); len(errs) > 0 {
		t.Error(errors.Join(errs...))
	}
}

// --- editing rendered objects --------------------------------------------------------

// step is one element of a path: a map key, or a list index written [N].
func steps(path string) []string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			if i := strings.Index(part, "["); i > 0 {
				out = append(out, part[:i])
				part = part[i:]
				continue
			}
			if strings.HasPrefix(part, "[") {
				end := strings.Index(part, "]")
				out = append(out, part[:end+1])
				part = part[end+1:]
				continue
			}
			out = append(out, part)
			part = ""
		}
	}
	return out
}

// edit sets (or with value == nil deletes) the field at path in obj.
func edit(t *testing.T, obj map[string]any, path string, value any) {
	t.Helper()
	parts := steps(path)
	var cur any = obj
	for i, part := range parts {
		last := i == len(parts)-1
		if strings.HasPrefix(part, "[") {
			index, _ := strconv.Atoi(part[1 : len(part)-1])
			list, ok := cur.([]any)
			if !ok || index >= len(list) {
				t.Fatalf("%s: no %s", path, part)
			}
			if last {
				list[index] = value
				return
			}
			cur = list[index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is not in a map", path, part)
		}
		if last {
			if value == nil {
				delete(m, part)
			} else {
				m[part] = value
			}
			return
		}
		next, ok := m[part]
		if !ok {
			next = map[string]any{}
			m[part] = next
		}
		cur = next
	}
}

func find(t *testing.T, docs []Doc, kind, name string) map[string]any {
	t.Helper()
	for _, doc := range docs {
		if doc.str("kind") == kind && doc.str("metadata", "name") == name {
			return doc.Obj
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

// yamlValue is a literal as the render would carry it (numbers as json.Number).
func yamlValue(t *testing.T, text string) any {
	t.Helper()
	obj, err := yamlObject([]byte("v: " + text))
	if err != nil {
		t.Fatal(err)
	}
	return obj["v"]
}

func args(t *testing.T, docs []Doc, replace func([]string) []string) {
	t.Helper()
	container := find(t, docs, "Deployment", "handshaker")["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	var list []string
	for _, a := range container["args"].([]any) {
		list = append(list, a.(string))
	}
	var out []any
	for _, a := range replace(list) {
		out = append(out, a)
	}
	container["args"] = out
}

func replaceArg(old, new string) func([]string) []string {
	return func(list []string) []string {
		var out []string
		for _, a := range list {
			if a == old {
				if new == "" {
					continue
				}
				a = new
			}
			out = append(out, a)
		}
		return out
	}
}

const (
	pod       = "spec.template.spec"
	container = "spec.template.spec.containers[0]"
)

// TestWhatItRejects: each case breaks one thing in a valid render; the validator must
// say so (the message names what is wrong).
func TestWhatItRejects(t *testing.T) {
	type mutation func(t *testing.T, docs []Doc)
	set := func(kind, name, path, value string) mutation {
		return func(t *testing.T, docs []Doc) {
			var v any
			if value != "" {
				v = yamlValue(t, value)
			}
			edit(t, find(t, docs, kind, name), path, v)
		}
	}
	both := func(a, b mutation) mutation {
		return func(t *testing.T, docs []Doc) { a(t, docs); b(t, docs) }
	}
	cases := []struct {
		name   string
		dir    string
		mutate mutation
		want   string
	}{
		{"an unknown field in a container's securityContext", "overlays/redis",
			set("Deployment", "handshaker", container+".securityContext.runAsUsr", "10001"), `unknown field`},
		{"a field in the wrong case", "overlays/redis",
			set("Deployment", "handshaker", "spec.Replicas", "3"), `unknown field "spec.Replicas"`},
		{"an unknown field in a probe", "sidecar",
			set("Deployment", "web", container+".readinessProbe.httpGet.schema", "HTTPS"), `unknown field`},
		{"no numeric user", "overlays/redis", both(
			set("Deployment", "handshaker", pod+".securityContext.runAsUser", ""),
			set("Deployment", "handshaker", container+".securityContext.runAsUser", "")),
			"no numeric runAsUser"},
		{"a user name for runAsUser", "overlays/redis",
			set("Deployment", "handshaker", container+".securityContext.runAsUser", "handshaker"),
			"cannot unmarshal string"},
		{"a user other than the image's", "overlays/redis",
			set("Deployment", "handshaker", container+".securityContext.runAsUser", "1000"),
			"is not the image's USER 10001"},
		{"root for Redis", "overlays/redis", both(
			set("Deployment", "handshaker-redis", pod+".securityContext.runAsUser", "0"),
			set("Deployment", "handshaker-redis", container+".securityContext.runAsUser", "0")),
			"runAsUser 0 is root"},
		{"runAsNonRoot off", "overlays/redis", both(
			set("Deployment", "handshaker", pod+".securityContext.runAsNonRoot", "false"),
			set("Deployment", "handshaker", container+".securityContext.runAsNonRoot", "")),
			"runAsNonRoot must be true"},
		{"another image", "overlays/redis",
			set("Deployment", "handshaker", container+".image", "handshaker:latest"),
			`is not "handshaker:0.1.0", the image deploy/Dockerfile builds`},
		{"another image in the sidecar", "sidecar",
			set("Deployment", "web", pod+".initContainers[0].image", "example.com/handshaker:0.0.9"),
			`the image deploy/Dockerfile builds`},
		{"no readiness probe", "overlays/redis",
			set("Deployment", "handshaker", container+".readinessProbe", ""), "needs a readinessProbe"},
		{"no probes on Redis", "overlays/redis",
			set("Deployment", "handshaker-redis", container+".livenessProbe", ""), "needs a readinessProbe and a livenessProbe"},
		{"a TCP probe instead of gRPC health", "overlays/redis",
			set("Deployment", "handshaker", container+".livenessProbe", "{tcpSocket: {port: 8081}}"),
			"livenessProbe must be a grpc probe on the health port 8081"},
		{"a gRPC probe on the mTLS port", "overlays/redis",
			set("Deployment", "handshaker", container+".readinessProbe.grpc.port", "50051"),
			"readinessProbe must be a grpc probe on the health port 8081"},
		{"a misspelt serve option", "overlays/redis",
			func(t *testing.T, docs []Doc) {
				args(t, docs, replaceArg("--keystore=/var/lib/handshaker/keystore", "--key-store=/var/lib/handshaker/keystore"))
			},
			"handshaker serve has no option --key-store"},
		{"no health listener", "overlays/redis",
			func(t *testing.T, docs []Doc) { args(t, docs, replaceArg("--health-listen=0.0.0.0:8081", "")) },
			"serve without --health-listen"},
		{"a writable root filesystem", "overlays/redis",
			set("Deployment", "handshaker", container+".securityContext.readOnlyRootFilesystem", "false"),
			"readOnlyRootFilesystem must be true"},
		{"seccomp unconfined", "sidecar", both(
			set("Deployment", "web", pod+".securityContext.seccompProfile.type", "Unconfined"),
			set("Deployment", "web", container+".securityContext.seccompProfile", "")),
			"seccompProfile must be RuntimeDefault"},
		{"privilege escalation allowed", "overlays/redis",
			set("Deployment", "handshaker", container+".securityContext.allowPrivilegeEscalation", ""),
			"allowPrivilegeEscalation must be false"},
		{"capabilities kept", "overlays/redis",
			set("Deployment", "handshaker", container+".securityContext.capabilities.drop", "[NET_RAW]"),
			"capabilities must drop ALL"},
		{"a service account token", "overlays/redis",
			set("Deployment", "handshaker", pod+".automountServiceAccountToken", ""),
			"automountServiceAccountToken must be false"},
		{"no resources", "overlays/redis",
			set("Deployment", "handshaker", container+".resources", ""), "no memory limit"},
		{"no emptyDir at /tmp", "overlays/redis",
			set("Deployment", "handshaker", container+".volumeMounts[5]", "{name: keystore, mountPath: /var/tmp}"),
			"no emptyDir at /tmp"},
		{"a writable Secret mount", "overlays/redis",
			set("Deployment", "handshaker", container+".volumeMounts[1].readOnly", "false"), "must be readOnly"},
		{"three replicas on the memory store", "overlays/redis",
			func(t *testing.T, docs []Doc) {
				args(t, docs, replaceArg("--session-store=redis://handshaker-redis:6379/0", "--session-store=memory"))
			},
			"the unary API needs --session-store"},
		{"a Redis Service on another port", "overlays/redis",
			set("Service", "handshaker-redis", "spec.ports[0].port", "6380"), "has no port 6379"},
		{"no client CA (TLS, not mutual TLS)", "overlays/redis",
			func(t *testing.T, docs []Doc) {
				args(t, docs, replaceArg("--tls-client-ca=/etc/handshaker/grpc/ca.crt", ""))
			},
			"without --tls-client-ca"},
		{"a NetworkPolicy open to everyone", "overlays/redis",
			set("NetworkPolicy", "handshaker", "spec.ingress[0].from", ""), "admits everyone to the gRPC port"},
		{"a NetworkPolicy admitting unlabelled pods", "overlays/redis",
			set("NetworkPolicy", "handshaker", "spec.ingress[0].from[0].podSelector.matchLabels", "{app: web}"),
			`that is not a pod labelled handshaker.dev/caller: "true"`},
		{"a NetworkPolicy admitting an address block", "overlays/redis",
			set("NetworkPolicy", "handshaker", "spec.ingress[0].from[0]", "{ipBlock: {cidr: 10.0.0.0/8}}"),
			`that is not a pod labelled`},
		{"a NetworkPolicy that shuts the health port", "overlays/redis",
			set("NetworkPolicy", "handshaker", "spec.ingress[1]", "{from: [{podSelector: {}}], ports: [{port: 9999}]}"),
			"no NetworkPolicy rule admits the health port 8081"},
		{"no NetworkPolicy", "sidecar",
			set("NetworkPolicy", "web", "spec.podSelector.matchLabels", "{app: other}"),
			"no NetworkPolicy with Ingress selects its pods"},
		{"a Service exposing the health port", "overlays/redis",
			set("Service", "handshaker", "spec.ports", "[{name: grpc, port: 50051, targetPort: grpc}, {name: health, port: 8081, targetPort: health}]"),
			"exposes the health port"},
		{"no PodDisruptionBudget", "overlays/redis",
			set("PodDisruptionBudget", "handshaker", "spec.selector.matchLabels", "{app: other}"),
			"no PodDisruptionBudget"},
		{"an unknown field in a Certificate", "overlays/redis",
			set("Certificate", "handshaker-grpc", "spec.dnsName", "[handshaker]"), `unknown field "spec.dnsName"`},
		{"an unknown key usage", "overlays/redis",
			set("Certificate", "handshaker-grpc", "spec.usages[2]", "serverAuth"), `is not a cert-manager key usage`},
		{"a gRPC certificate without the Service's name", "overlays/redis",
			set("Certificate", "handshaker-grpc", "spec.dnsNames", "[handshaker]"), "dnsNames lack handshaker.handshaker.svc"},
		{"a Secret no Certificate makes", "overlays/redis",
			set("Certificate", "handshaker-credential-web", "spec.secretName", "web-tls"),
			"Secret handshaker-credential-web is made by no Certificate"},
		{"an issuer of two kinds", "overlays/dev",
			set("ClusterIssuer", "web-issuer", "spec.selfSigned", "{}"), "exactly one of selfSigned and ca"},
		{"a socket no other container mounts", "sidecar",
			set("Deployment", "web", container+".volumeMounts[0].name", "tmp"), "no other container mounts the socket's volume"},
		{"a kind the validator does not know", "base",
			set("Namespace", "handshaker", "kind", "Pod"), `kind "v1 Pod" is not one the validator knows`},
	}
	expect := expectOf(t)
	rendered := map[string][]byte{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if rendered[c.dir] == nil {
				data, err := json.Marshal(render(t, "deploy/kubernetes/"+c.dir))
				if err != nil {
					t.Fatal(err)
				}
				rendered[c.dir] = data
			}
			var docs []Doc
			decoder := json.NewDecoder(strings.NewReader(string(rendered[c.dir])))
			decoder.UseNumber()
			if err := decoder.Decode(&docs); err != nil {
				t.Fatal(err)
			}
			if errs := Validate(docs, expect); len(errs) > 0 {
				t.Fatalf("valid before the change: %v", errors.Join(errs...))
			}
			c.mutate(t, docs)
			errs := Validate(docs, expect)
			if len(errs) == 0 {
				t.Fatalf("accepted; want an error with %q", c.want)
			}
			if got := errors.Join(errs...).Error(); !strings.Contains(got, c.want) {
				t.Fatalf("errors %q; want one with %q", got, c.want)
			}
		})
	}
}

// TestAnUnknownFieldInASourceFileIsRejected: through kustomize, from a file on disk.
func TestAnUnknownFieldInASourceFileIsRejected(t *testing.T) {
	dir := t.TempDir()
	base, err := filepath.Abs(filepath.Join(root, "deploy/kubernetes/base"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kustomization.yaml", "resources: ["+rel+"]\npatches:\n  - path: patch.yaml\n")
	write("patch.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: handshaker}
spec:
  template:
    spec:
      containers:
        - name: handshaker
          resource: {limits: {memory: 1Gi}}
`)
	docs, err := Render(dir, ".")
	if err != nil {
		t.Fatal(err)
	}
	errs := Validate(docs, expectOf(t))
	if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), `unknown field "spec.template.spec.containers[0].resource"`) {
		t.Fatalf("errors %v; want the unknown field resource", errs)
	}
	// A misspelt key in the kustomization itself fails the render.
	write("kustomization.yaml", "resource: ["+rel+"]\n")
	if _, err := Render(dir, "."); err == nil {
		t.Fatal("a kustomization with the key resource (not resources) rendered")
	}
}

func TestTheDockerfileMustRunAsANumericUser(t *testing.T) {
	const stage = "FROM python:3.11-slim AS build\nRUN true\nFROM python:3.11-slim\n" +
		`LABEL org.opencontainers.image.title="handshaker" org.opencontainers.image.version="0.1.0"` + "\n"
	for text, want := range map[string]string{
		stage + "USER handshaker\n":    "is not numeric",
		stage + "USER 0\n":             "is root",
		stage:                          "no USER",
		"FROM a\nUSER 10001\nFROM b\n": "needs the labels",
		"FROM a\nUSER 1\n" + stage + "USER 10001\n": "",
	} {
		expect, err := parseDockerfile(text, "")
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", text, err)
		case want == "" && (expect.UID != 10001 || expect.Image != "handshaker:0.1.0"):
			t.Errorf("%q: %+v", text, expect)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
	}
}

func TestComposeIsCheckedStrictly(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	expect := expectOf(t)
	for name, c := range map[string]struct{ old, new, want string }{
		"a misspelt key":        {"    read_only: true\n", "    readonly: true\n", `unknown field`},
		"another image":         {"image: handshaker:0.1.0", "image: handshaker:dev", `is not "handshaker:0.1.0"`},
		"no Redis store":        {"--session-store=redis://redis:6379/0", "--session-store=memory", "--session-store"},
		"an unknown dependency": {"redis: {condition: service_healthy}", "valkey: {condition: service_healthy}", "which is no service"},
		"no caller":             {"  caller:\n", "  other:\n", `no service "caller"`},
		"an unknown option":     {"--listen=unix:", "--listen-on=unix:", "no option --listen-on"},
	} {
		changed := strings.Replace(text, c.old, c.new, 1)
		if changed == text {
			t.Fatalf("%s: %q is not in docker-compose.yml", name, c.old)
		}
		errs := validateCompose([]byte(changed), expect)
		if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), c.want) {
			t.Errorf("%s: errors %v, want %q", name, errs, c.want)
		}
	}
}
