package fsm_test

// The fsm package is pure and deterministic (DESIGN.md "Module and
// packages", STYLE rules 1 and 5): it imports nothing of ours but the root
// package, never raft, net, os or randomness, never reads the clock, and
// starts no goroutines. These tests fail as soon as someone adds such an
// import or call.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const rootModule = "github.com/raftlease/raftlease"

// forbiddenImport reports why package fsm may not import path directly.
func forbiddenImport(path string) string {
	first, _, _ := strings.Cut(path, "/")
	if strings.Contains(first, ".") { // not the standard library
		if path == rootModule {
			return ""
		}
		return "fsm imports nothing outside the standard library but the root package"
	}
	for _, p := range []string{"os", "net", "syscall", "io/ioutil", "log", "testing", "unsafe", "runtime", "plugin", "math/rand", "crypto/rand"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return "fsm does no I/O, starts no goroutines and draws no random numbers"
		}
	}
	return ""
}

// forbiddenTimeCalls read the machine's clock or start timers: time enters
// the state machine only through a command's stamp.
var forbiddenTimeCalls = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick"}

// checkPurity returns every violation in the parsed files.
func checkPurity(fset *token.FileSet, files []*ast.File) []string {
	var problems []string
	report := func(pos token.Pos, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", fset.Position(pos), fmt.Sprintf(format, args...)))
	}
	for _, f := range files {
		timeName := ""
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if why := forbiddenImport(path); why != "" {
				report(imp.Pos(), "imports %q: %s", path, why)
			}
			if path == "time" {
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				report(n.Pos(), "starts a goroutine")
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && slices.Contains(forbiddenTimeCalls, n.Sel.Name) {
					report(n.Pos(), "uses %s.%s: time enters only through a command's Stamp", timeName, n.Sel.Name)
				}
			}
			return true
		})
	}
	return problems
}

func TestPackageIsPure(t *testing.T) {
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d source files", len(files))
	}
	for _, p := range checkPurity(fset, files) {
		t.Error(p)
	}
}

// TestPurityCheckCatchesViolations makes sure the check above is not
// vacuous.
func TestPurityCheckCatchesViolations(t *testing.T) {
	src := `package fsm

import (
	"os"
	"net/http"
	"math/rand/v2"
	clock "time"
	"github.com/hashicorp/raft"
	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/cluster"
)

func f() {
	_ = clock.Now()
	_ = clock.Since(clock.Time{})
	go f()
	_ = clock.Duration(0) // fine
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	problems := checkPurity(fset, []*ast.File{f})
	for _, want := range []string{`"os"`, `"net/http"`, `"math/rand/v2"`, `"github.com/hashicorp/raft"`, `"github.com/raftlease/raftlease/cluster"`, "time.Now", "time.Since", "goroutine"} {
		want = strings.Replace(want, "time.", "clock.", 1)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("the check misses %s; it reports:\n%s", want, strings.Join(problems, "\n"))
		}
	}
	if len(problems) != 8 {
		t.Errorf("%d problems, want 8 (the root package and clock.Duration are fine):\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// TestDependencies checks the whole import graph with the go tool: no
// package outside the standard library but the root one, and nothing of
// the network or randomness even indirectly.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		switch {
		case std == "false" && path != rootModule && path != rootModule+"/fsm":
			t.Errorf("fsm depends on %s", path)
		case path == "net" || strings.HasPrefix(path, "net/") || path == "os/exec" ||
			path == "math/rand" || strings.HasPrefix(path, "math/rand/") || strings.HasPrefix(path, "crypto/"):
			t.Errorf("fsm depends on %s, even if indirectly", path)
		}
	}
}
