// Package archtest checks the one dependency rule of ARCHITECTURE.md: imports point inward only
// (domain ← eventstore ← projections ← app ← adapters/* ← cmd/*), domain uses the standard library
// only, adapters never import each other, and nothing imports cmd.
package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/metachat/metachat/"

// allowed lists, per layer, the project layers it may import.
var allowed = map[string][]string{
	"domain":      {},
	"eventstore":  {"domain"},
	"migrations":  {},
	"projections": {"domain", "eventstore", "migrations"},
	"app":         {"domain", "eventstore", "projections", "migrations"},
	"adapters":    {"domain", "eventstore", "projections", "migrations", "app"},
	"cmd":         {"domain", "eventstore", "projections", "migrations", "app", "adapters", "internal"},
	"internal":    {"domain", "eventstore", "projections", "migrations", "app"},
}

// layer returns the layer of a package path inside the module ("adapters" for adapters/x).
func layer(rel string) string {
	first, _, _ := strings.Cut(rel, "/")
	return first
}

func TestDependencyRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(fields[0], module)
		from := layer(pkg)
		ok, known := allowed[from]
		if !known {
			t.Errorf("package %s is in no layer of ARCHITECTURE.md", pkg)
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				if from == "domain" && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
					t.Errorf("domain must use the standard library only, imports %s", imp)
				}
				continue
			}
			rel := strings.TrimPrefix(imp, module)
			to := layer(rel)
			switch {
			case to == "cmd":
				t.Errorf("%s imports %s: nothing imports cmd", pkg, rel)
			case from == "adapters" && to == "adapters" && !strings.HasPrefix(rel+"/", pkgRoot(pkg)):
				t.Errorf("%s imports %s: adapters never import each other", pkg, rel)
			case to != from && !contains(ok, to):
				t.Errorf("%s imports %s: %s may import only %v", pkg, rel, from, ok)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages", checked)
	}
}

// pkgRoot returns "adapters/x/" for a package under adapters/x.
func pkgRoot(pkg string) string {
	parts := strings.SplitN(pkg, "/", 3)
	if len(parts) < 2 {
		return pkg + "/"
	}
	return parts[0] + "/" + parts[1] + "/"
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
