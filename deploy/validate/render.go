package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Doc is one rendered object: its JSON form as a generic map (which the tests mutate)
// and where it came from.
type Doc struct {
	Source string
	Obj    map[string]any
}

func (d Doc) str(path ...string) string {
	var cur any = d.Obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// Kind is "apiVersion kind", Name "namespace/name" (or just name).
func (d Doc) Kind() string { return d.str("apiVersion") + " " + d.str("kind") }
func (d Doc) Name() string {
	if ns := d.str("metadata", "namespace"); ns != "" {
		return ns + "/" + d.str("metadata", "name")
	}
	return d.str("metadata", "name")
}
func (d Doc) String() string { return fmt.Sprintf("%s: %s %s", d.Source, d.str("kind"), d.Name()) }

// Kustomizations lists the folders under dir that hold a kustomization.yaml (not
// components, which render only as part of another), relative to root, sorted.
func Kustomizations(root, dir string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entry.IsDir() || entry.Name() != "kustomization.yaml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte("kind: Component")) {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		found = append(found, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(found)
	return found, err
}

// Render builds one kustomization in-process (kustomize's krusty, as `kubectl kustomize`
// does; no cluster, no network: remote bases would fail) and returns its objects.
func Render(root, dir string) ([]Doc, error) {
	kustomizer := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := kustomizer.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("%s: kustomize: %w", dir, err)
	}
	var docs []Doc
	for _, resource := range resources.Resources() {
		data, err := resource.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		obj, err := yamlObject(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		docs = append(docs, Doc{Source: dir, Obj: obj})
	}
	return docs, nil
}

// yamlObject is one YAML document as a JSON map (numbers kept as json.Number).
func yamlObject(data []byte) (map[string]any, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	decoder := json.NewDecoder(bytes.NewReader(js))
	decoder.UseNumber()
	var obj map[string]any
	if err := decoder.Decode(&obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Expect is what deploy/Dockerfile builds: the image the manifests must name, and the
// numeric user it runs as.
type Expect struct {
	Image string // title:version, from the image's labels
	UID   int64  // from its last USER
	// The options of handshaker serve (service/handshaker/serve_args.py, and the CLI's
	// --keystore); nil: not checked.
	ServeFlags map[string]bool
}

var serveFlagRe = regexp.MustCompile(`(?:parser|group)\.add_argument\(\s*"(--[a-z0-9-]+)"`)

// readServeFlags lists the options add_serve_arguments declares (on the parser or its groups).
func readServeFlags(root string) (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(root, "service", "handshaker", "serve_args.py"))
	if err != nil {
		return nil, err
	}
	flags := map[string]bool{"--keystore": true, "--help": true}
	for _, match := range serveFlagRe.FindAllSubmatch(data, -1) {
		flags[string(match[1])] = true
	}
	if !flags["--listen"] || !flags["--health-listen"] {
		return nil, fmt.Errorf("service/handshaker/serve_args.py: found no --listen or --health-listen option")
	}
	return flags, nil
}

var (
	labelRe   = regexp.MustCompile(`org\.opencontainers\.image\.(title|version)="([^"]+)"`)
	userRe    = regexp.MustCompile(`(?m)^USER[ \t]+(\S+)[ \t]*$`)
	numericRe = regexp.MustCompile(`^([0-9]+)(:[0-9]+)?$`)
	versionRe = regexp.MustCompile(`(?m)^version = "([^"]+)"`)
)

// ReadExpect reads the image name and user from the Dockerfile's final stage and checks
// that its version is pyproject.toml's.
func ReadExpect(root string) (Expect, error) {
	data, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		return Expect{}, err
	}
	expect, err := parseDockerfile(string(data), root)
	if err != nil {
		return Expect{}, err
	}
	expect.ServeFlags, err = readServeFlags(root)
	return expect, err
}

func parseDockerfile(text, root string) (Expect, error) {
	stages := regexp.MustCompile(`(?m)^FROM\s`).FindAllStringIndex(text, -1)
	if len(stages) == 0 {
		return Expect{}, fmt.Errorf("deploy/Dockerfile: no FROM")
	}
	final := text[stages[len(stages)-1][0]:]
	labels := map[string]string{}
	for _, match := range labelRe.FindAllStringSubmatch(final, -1) {
		labels[match[1]] = match[2]
	}
	if labels["title"] == "" || labels["version"] == "" {
		return Expect{}, fmt.Errorf("deploy/Dockerfile: the final stage needs the labels " +
			"org.opencontainers.image.title and org.opencontainers.image.version (the image's name:tag)")
	}
	users := userRe.FindAllStringSubmatch(final, -1)
	if len(users) == 0 {
		return Expect{}, fmt.Errorf("deploy/Dockerfile: the final stage has no USER (it would run as root)")
	}
	user := users[len(users)-1][1]
	match := numericRe.FindStringSubmatch(user)
	if match == nil {
		return Expect{}, fmt.Errorf("deploy/Dockerfile: USER %s is not numeric (UID or UID:GID): "+
			"runAsNonRoot cannot check a user name", user)
	}
	uid, _ := strconv.ParseInt(match[1], 10, 64)
	if uid == 0 {
		return Expect{}, fmt.Errorf("deploy/Dockerfile: USER %s is root", user)
	}
	if root != "" {
		pyproject, err := os.ReadFile(filepath.Join(root, "pyproject.toml"))
		if err != nil {
			return Expect{}, err
		}
		version := versionRe.FindSubmatch(pyproject)
		if version == nil || string(version[1]) != labels["version"] {
			return Expect{}, fmt.Errorf("deploy/Dockerfile: image version %q is not pyproject.toml's",
				labels["version"])
		}
	}
	return Expect{Image: labels["title"] + ":" + labels["version"], UID: uid}, nil
}

// imageName is an image reference without its registry path and tag: handshaker for
// registry.example/team/handshaker:0.1.0.
func imageName(image string) string {
	name := image
	if at := strings.Index(name, "@"); at >= 0 {
		name = name[:at]
	}
	if slash := strings.LastIndex(name, "/"); slash >= 0 {
		name = name[slash+1:]
	}
	if colon := strings.Index(name, ":"); colon >= 0 {
		name = name[:colon]
	}
	return name
}
