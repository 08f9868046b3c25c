package crdt_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/lattice-crdt/lattice"

// layerRules are the import rules of DESIGN.md ("Packages and what may
// import what"), checked against every package's direct imports. A package
// matches the longest rule prefix.
var layerRules = []struct {
	pkg       string
	forbidden []string // import path prefixes; module paths are relative
}{
	{"crdt", []string{"net", "os", "log", "math/rand", "crypto/rand", "syscall", "unsafe",
		"github.com/dgraph-io/badger", "github.com/hashicorp/memberlist", "@sidecar", "@gossip", "@adapters", "@cmd", "@bench"}},
	// The simulator draws from seeded generators it creates itself.
	{"crdt/crdttest", []string{"net", "os", "log", "crypto/rand", "syscall",
		"github.com/dgraph-io/badger", "github.com/hashicorp/memberlist", "@sidecar", "@gossip", "@adapters", "@cmd", "@bench"}},
	{"sidecar/store", []string{"github.com/hashicorp/memberlist", "@gossip", "@adapters", "@cmd", "@bench", "@sidecar$"}},
	{"gossip", []string{"github.com/dgraph-io/badger", "@sidecar", "@adapters", "@cmd", "@bench"}},
	{"adapters", []string{"github.com/dgraph-io/badger", "github.com/hashicorp/memberlist", "@sidecar", "@gossip", "@cmd", "@bench"}},
	// The command-line library stays in cmd: the packages below it take
	// plain values, not flags.
	{"sidecar", []string{"@cmd", "@bench", "github.com/spf13/cobra", "github.com/spf13/pflag"}},
	// The console sees only what the agent's API shows.
	{"sidecar/console", []string{"github.com/dgraph-io/badger", "github.com/hashicorp/memberlist",
		"@sidecar$", "@sidecar/store", "@sidecar/engine", "@gossip", "@adapters", "@cmd", "@bench",
		"github.com/spf13/cobra", "github.com/spf13/pflag"}},
	// The one source of time: the standard library only.
	{"clock", []string{"@crdt", "@sidecar", "@gossip", "@adapters", "@cmd", "@bench"}},
	{"bench", []string{"@cmd", "github.com/spf13/cobra", "github.com/spf13/pflag"}},
}

type listedPackage struct {
	ImportPath string
	Dir        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the packages with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-json", module+"/...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func forbiddenImport(imp, rule string) bool {
	if strings.HasPrefix(rule, "@") {
		rule = strings.TrimPrefix(rule, "@")
		exact := strings.HasSuffix(rule, "$")
		rule = module + "/" + strings.TrimSuffix(rule, "$")
		if exact {
			return imp == rule
		}
		return imp == rule || strings.HasPrefix(imp, rule+"/")
	}
	return imp == rule || strings.HasPrefix(imp, rule+"/")
}

func TestImportBoundaries(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		best := -1
		for i, r := range layerRules {
			if (rel == r.pkg || strings.HasPrefix(rel, r.pkg+"/")) && (best < 0 || len(r.pkg) > len(layerRules[best].pkg)) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		for _, imp := range p.Imports {
			for _, f := range layerRules[best].forbidden {
				if forbiddenImport(imp, f) {
					t.Errorf("%s imports %s, which DESIGN.md forbids for %s", rel, imp, layerRules[best].pkg)
				}
			}
		}
	}
}

// engineImports are all that sidecar/engine may import besides the standard
// library: the pure core, the adapter contract's types and the error
// package. No store, gossip, concrete adapter or sidecar: the engine is a
// state machine without I/O (DESIGN.md "The system boundary").
var engineImports = []string{module + "/crdt", module + "/adapters", "github.com/cockroachdb/errors"}

func TestEngineImports(t *testing.T) {
	found := false
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/sidecar/engine" {
			continue
		}
		found = true
		for _, imp := range p.Imports {
			std := !strings.Contains(strings.Split(imp, "/")[0], ".")
			io := strings.HasPrefix(imp, "net") || strings.HasPrefix(imp, "os") || imp == "syscall"
			if std && !io || slices.Contains(engineImports, imp) {
				continue
			}
			t.Errorf("sidecar/engine imports %s; it may import only %v and the standard library (no I/O)", imp, engineImports)
		}
	}
	if !found {
		t.Fatal("go list found no sidecar/engine")
	}
}

// seededRand are the math/rand/v2 names that do not touch the global source.
var seededRand = map[string]bool{"New": true, "NewPCG": true, "NewChaCha8": true, "NewZipf": true,
	"Rand": true, "Source": true, "PCG": true, "ChaCha8": true, "Zipf": true}

// TestCorePurity checks what imports cannot: the crdt packages and the
// sidecar's engine never read the system clock, never start goroutines and never draw from the global random
// source.
func TestCorePurity(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel != "crdt" && !strings.HasPrefix(rel, "crdt/") && rel != "sidecar/engine" {
			continue
		}
		for _, f := range p.GoFiles {
			path := filepath.Join(p.Dir, f)
			file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("%s starts a goroutine", path)
				case *ast.SelectorExpr:
					if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && (n.Sel.Name == "Now" || n.Sel.Name == "Since" || n.Sel.Name == "Until" || n.Sel.Name == "Sleep") {
						t.Errorf("%s calls time.%s", path, n.Sel.Name)
					}
					// Seeded generators only: rand.New(rand.NewPCG(seed, ...)),
					// never the global source.
					if id, ok := n.X.(*ast.Ident); ok && id.Name == "rand" && !seededRand[n.Sel.Name] {
						t.Errorf("%s uses the global random source (rand.%s)", path, n.Sel.Name)
					}
				}
				return true
			})
		}
	}
}
