package larder_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/larder/larder"

// layerRules is the table of ../shared/DESIGN.md: a package (and its
// subpackages) may not depend, directly or through others, on any of the
// listed packages (or their subpackages).
var layerRules = map[string][]string{
	"recompress":       {"repo", "crypto", "cmd"},
	"chunk":            {"repo", "cmd"},
	"crypto":           {"repo", "recompress", "cmd"},
	"repo":             {"cmd"},
	"":                 {"cmd"}, // the module root, package larder
	"internal/fixture": {"repo", "cmd"},
	// Drills' PostgreSQL and the tests' S3 server know nothing of the
	// repository.
	"internal/pgcluster": {"repo", "cmd"},
	// The Zulip export check reads an unpacked folder, nothing else.
	"internal/zulip": {"repo", "crypto", "recompress", "cmd"},
	// The admin page drives the root package and the repository; the
	// command line only starts it.
	"internal/web": {"cmd"},
	// Sizes and ages as people read them: a leaf.
	"internal/units": {"repo", "crypto", "recompress", "cmd"},
	// The repository's object format knows no streams' contents.
	"repo/internal": {"recompress"},
}

// packageRules ban single packages (not their subpackages): a package
// (and its subpackages) may not depend on exactly these. The storage
// layer sits below the repository that uses it.
var packageRules = map[string][]string{
	"repo/backend":        {"repo"},
	"repo/internal/pack":  {"repo"},
	"repo/internal/index": {"repo"},
	"internal/s3test":     {"repo"},
}

// within reports whether the import path p is the package rel of this module
// or one of its subpackages. rel "" is the module root package alone.
func within(p, rel string) bool {
	if rel == "" {
		return p == module
	}
	full := module + "/" + rel
	return p == full || strings.HasPrefix(p, full+"/")
}

// violations checks one package's dependency list against layerRules.
func violations(pkg string, deps []string) []string {
	var out []string
	for from, banned := range layerRules {
		if !within(pkg, from) {
			continue
		}
		for _, d := range deps {
			for _, b := range banned {
				if within(d, b) {
					out = append(out, pkg+" depends on "+d)
				}
			}
		}
	}
	for from, banned := range packageRules {
		if !within(pkg, from) {
			continue
		}
		for _, d := range deps {
			for _, b := range banned {
				if d == module+"/"+b {
					out = append(out, pkg+" depends on "+d)
				}
			}
		}
	}
	// Nothing but cmd itself imports cmd.
	if !within(pkg, "cmd") {
		for _, d := range deps {
			if within(d, "cmd") {
				out = append(out, pkg+" imports the command package "+d)
			}
		}
	}
	return out
}

func TestLayeringRulesDetectViolations(t *testing.T) {
	bad := violations(module+"/recompress/deflate", []string{"io", module + "/repo/internal/pack"})
	if len(bad) == 0 {
		t.Fatal("a recompress subpackage depending on repo was not flagged")
	}
	if v := violations(module+"/repo", []string{module + "/crypto", module + "/chunk"}); len(v) != 0 {
		t.Fatalf("allowed dependencies flagged: %v", v)
	}
	if v := violations(module, []string{module + "/cmd/larder"}); len(v) == 0 {
		t.Fatal("the root package importing cmd was not flagged")
	}
	if v := violations(module+"/repo/backend/backendtest", []string{module + "/repo"}); len(v) == 0 {
		t.Fatal("the storage layer depending on the repository was not flagged")
	}
	if v := violations(module+"/repo/internal/pack", []string{module + "/repo"}); len(v) == 0 {
		t.Fatal("the pack format depending on the repository was not flagged")
	}
	if v := violations(module+"/repo", []string{module + "/repo/backend"}); len(v) != 0 {
		t.Fatalf("the repository using its storage layer was flagged: %v", v)
	}
}

// TestLayering enforces the package layering of DESIGN.md on the real tree,
// including the imports of test files and of the fixture builders under
// internal/fixture.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-test=false",
		"-f", `{{.ImportPath}} {{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`,
		"./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		n++
		for _, v := range violations(f[0], f[1:]) {
			t.Error(v)
		}
	}
	if n < 6 {
		t.Fatalf("go list reported only %d packages; the layering check saw too little:\n%s", n, out)
	}
}
