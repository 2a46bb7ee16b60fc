package raftlease_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionCodeDoesNotImportTesting enforces STYLE rule 23: no package
// outside testutil pulls "testing" into a binary (the lesson of hashicorp's
// testing.go files).
func TestProductionCodeDoesNotImportTesting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(p, "/testutil") {
			pkgs = append(pkgs, p)
		}
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)
	deps, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(deps)) {
		if d == "testing" || strings.HasPrefix(d, "testing/") || strings.Contains(d, "/testutil") {
			t.Errorf("a production package depends on %s", d)
		}
	}
}

// TestRootImportsOnlyStdlib enforces STYLE rule 1 for the root package.
func TestRootImportsOnlyStdlib(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d != "github.com/raftlease/raftlease" {
			t.Errorf("root package depends on non-stdlib %s", d)
		}
	}
}
