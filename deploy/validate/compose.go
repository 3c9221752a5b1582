package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The Compose fields docker-compose.yml uses, decoded strictly (a misspelt key is an
// error). Add a field here when the file needs one.
type compose struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]*struct{}      `json:"volumes,omitempty"`
}

type composeService struct {
	Image       string                      `json:"image"`
	Build       *composeBuild               `json:"build,omitempty"`
	Entrypoint  []string                    `json:"entrypoint,omitempty"`
	Command     []string                    `json:"command,omitempty"`
	Environment map[string]string           `json:"environment,omitempty"`
	ReadOnly    bool                        `json:"read_only,omitempty"`
	Tmpfs       []string                    `json:"tmpfs,omitempty"`
	Volumes     []string                    `json:"volumes,omitempty"`
	DependsOn   map[string]composeDependsOn `json:"depends_on,omitempty"`
	Healthcheck *composeHealthcheck         `json:"healthcheck,omitempty"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

type composeDependsOn struct {
	Condition string `json:"condition"`
}

type composeHealthcheck struct {
	Test     []string `json:"test"`
	Interval string   `json:"interval,omitempty"`
	Timeout  string   `json:"timeout,omitempty"`
	Retries  int      `json:"retries,omitempty"`
}

// ValidateCompose checks docker-compose.yml: the service built from deploy/Dockerfile
// under the manifests' image name, Redis as its session store, an example caller.
func ValidateCompose(root string, expect Expect) []error {
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		return []error{err}
	}
	return validateCompose(data, expect)
}

func validateCompose(data []byte, expect Expect) []error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("docker-compose.yml: "+format, args...)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return []error{fail("%v", err)}
	}
	var file compose
	strict, err := sigsjson.UnmarshalStrict(js, &file)
	if err != nil {
		return []error{fail("%v", err)}
	}
	var errs []error
	for _, e := range strict {
		errs = append(errs, fail("%v", e))
	}
	if len(errs) > 0 {
		return errs
	}
	for _, name := range []string{"handshaker", "redis", "caller"} {
		if _, ok := file.Services[name]; !ok {
			errs = append(errs, fail("no service %q", name))
		}
	}
	builds := 0
	for name, service := range file.Services {
		if imageName(service.Image) == imageName(expect.Image) && service.Image != expect.Image {
			errs = append(errs, fail("service %s: image %q is not %q, which deploy/Dockerfile builds",
				name, service.Image, expect.Image))
		}
		if service.Build != nil {
			builds++
			if service.Build.Dockerfile != "deploy/Dockerfile" || service.Build.Context != "." ||
				service.Image != expect.Image {
				errs = append(errs, fail("service %s: build deploy/Dockerfile in context . as %s", name, expect.Image))
			}
		}
		for dependency, on := range service.DependsOn {
			target, ok := file.Services[dependency]
			switch {
			case !ok:
				errs = append(errs, fail("service %s depends on %s, which is no service", name, dependency))
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, on.Condition):
				errs = append(errs, fail("service %s: condition %q", name, on.Condition))
			case on.Condition == "service_healthy" && target.Healthcheck == nil:
				errs = append(errs, fail("service %s waits for %s to be healthy, which has no healthcheck", name, dependency))
			}
		}
		for _, volume := range service.Volumes {
			source, _, _ := strings.Cut(volume, ":")
			if !strings.HasPrefix(source, ".") && !strings.HasPrefix(source, "/") {
				if _, ok := file.Volumes[source]; !ok {
					errs = append(errs, fail("service %s mounts the volume %s, which is not declared", name, source))
				}
			}
		}
	}
	if builds != 1 {
		errs = append(errs, fail("%d services build the image; one should", builds))
	}
	if service, ok := file.Services["handshaker"]; ok {
		flags := serveFlags(service.Command)
		for _, flag := range sortedKeys(flags) {
			if expect.ServeFlags != nil && !expect.ServeFlags[flag] {
				errs = append(errs, fail("service handshaker: handshaker serve has no option %s", flag))
			}
		}
		store := flags["--session-store"]
		host := strings.SplitN(strings.TrimPrefix(store, "redis://"), ":", 2)[0]
		if !strings.HasPrefix(store, "redis://") || host != "redis" {
			errs = append(errs, fail("service handshaker: --session-store=redis://redis:6379/0 (got %q)", store))
		}
		if service.Healthcheck == nil {
			errs = append(errs, fail("service handshaker has no healthcheck"))
		}
	}
	if caller, ok := file.Services["caller"]; ok {
		if caller.Image != expect.Image || len(caller.DependsOn) == 0 {
			errs = append(errs, fail("service caller: runs %s and waits for the service", expect.Image))
		}
	}
	return errs
}
