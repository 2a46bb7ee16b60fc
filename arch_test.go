package raftlease_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionCodeDoesNotImportTesting enforces STYLE rule 23: none of
// our packages outside testutil imports "testing" or testutil, directly or
// through another of our packages (the lesson of hashicorp's testing.go
// files). hashicorp/raft itself still ships testing.go, so a binary that
// embeds a cluster node links "testing" through it; that is theirs, and the
// test names it rather than hiding it.
func TestProductionCodeDoesNotImportTesting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const module = "github.com/raftlease/raftlease"
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
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, pkgs...)
	deps, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(deps)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, imports := fields[0], fields[1:]
		ours := pkg == module || strings.HasPrefix(pkg, module+"/")
		for _, imp := range imports {
			bad := imp == "testing" || strings.HasPrefix(imp, "testing/") || strings.Contains(imp, module+"/testutil")
			switch {
			case bad && ours:
				t.Errorf("production package %s imports %s", pkg, imp)
			case bad:
				t.Logf("third-party %s imports %s (not ours to fix)", pkg, imp)
			}
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
