// Command validate checks deploy/ offline: it renders every kustomization under
// deploy/kubernetes in-process (kustomize's krusty; no cluster, no network), decodes
// every object strictly into the Kubernetes API types (k8s.io/api: apps/v1, core/v1,
// policy/v1, networking/v1; cert-manager objects into the structs of certmanager.go), so
// an unknown or misspelt field is an error, and checks the policies of validate.go:
// non-root numeric users, read-only root filesystems, seccomp RuntimeDefault, no
// capabilities, probes (gRPC ones on the plaintext health port for the service),
// resources, PodDisruptionBudgets, NetworkPolicies, Services, Certificates, and that the
// image named is the one deploy/Dockerfile builds. It checks docker-compose.yml too.
//
//	go run . [-root REPO]   (deploy/validate/run.sh runs it and its tests)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "../..", "the repository's root")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	failed := 0
	report := func(errs []error) {
		for _, err := range errs {
			fmt.Fprintln(os.Stderr, "  FAIL", err)
		}
		failed += len(errs)
	}
	expect, err := ReadExpect(abs)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(abs, ".dockerignore")); err != nil {
		report([]error{fmt.Errorf("no .dockerignore at the root: the build context would be the whole tree")})
	}
	dirs, err := Kustomizations(abs, "deploy/kubernetes")
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return fmt.Errorf("no kustomization under deploy/kubernetes")
	}
	for _, dir := range dirs {
		docs, err := Render(abs, dir)
		if err != nil {
			report([]error{err})
			continue
		}
		errs := Validate(docs, expect)
		report(errs)
		if len(errs) == 0 {
			fmt.Printf("ok   %s (%d objects, image %s, uid %d)\n", dir, len(docs), expect.Image, expect.UID)
		}
	}
	errs := ValidateCompose(abs, expect)
	report(errs)
	if len(errs) == 0 {
		fmt.Println("ok   docker-compose.yml")
	}
	if failed > 0 {
		return fmt.Errorf("deploy/validate: %d problems", failed)
	}
	return nil
}
