package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets. Their seed corpora are committed under testdata/fuzz/<name>
// (rewritten by TestFuzzSeeds with -update); TestFuzzSeedCorporaPresent
// fails if any target has none, so seeds cannot vanish silently.

// isOneOf reports whether err wraps one of the sentinels.
func isOneOf(err error, sentinels ...error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzParseKeyFile: parsing never panics, fails only with the documented
// errors, and succeeds only on files this package made (forging the AEAD
// tag is infeasible, so any other success is a parsing bug).
func FuzzParseKeyFile(f *testing.F) {
	valid := map[[32]byte]bool{}
	for name, b := range goldenFiles(f) {
		if strings.HasSuffix(name, ".key") {
			valid[sha256.Sum256(b)] = true
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, herr := ParseKeyFileHeader(data)
		if herr != nil && !isOneOf(herr, ErrMalformed, ErrUnsupportedVersion, ErrUnprotectedKey) {
			t.Fatalf("header: unexpected error %v", herr)
		}
		// Deriving keys with expensive parameters would only measure
		// argon2id; the header bounds are what protects readers there.
		if herr == nil && h.Protected && (h.KDF.Time > 4 || h.KDF.MemoryKiB > 1024 || h.KDF.Threads > 4) {
			return
		}
		kf, err := ParseKeyFile(data, goldenPass)
		if err != nil {
			if kf != nil {
				t.Fatal("a key was returned with an error")
			}
			if !isOneOf(err, ErrMalformed, ErrUnsupportedVersion, ErrUnprotectedKey, ErrWrongPassphrase, ErrAuthFailed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if herr != nil {
			t.Fatalf("file parsed but its header did not: %v", herr)
		}
		if !valid[sha256.Sum256(data)] {
			t.Fatalf("a file this package did not make was accepted: %x", data)
		}
		n := 0
		for _, set := range []bool{kf.Master != nil, kf.Write != nil, kf.Audit != nil} {
			if set {
				n++
			}
		}
		if n != 1 || kf.ID != h.ID || kf.Role != h.Role {
			t.Fatalf("inconsistent key file %+v", kf.KeyFileHeader)
		}
	})
}

// FuzzOpenSealed: opening never panics, fails only with the documented
// errors, and succeeds only on objects sealed by the test, returning what
// was sealed.
func FuzzOpenSealed(f *testing.F) {
	m, _, a := testKeys(f)
	valid := map[[32]byte][]byte{}
	for _, s := range sealedSeeds(f) {
		valid[sha256.Sum256(s.sealed)] = s.plaintext
		f.Add(s.sealed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, priv := range [][32]byte{m.BoxKey.Private, a.BoxKey.Private} {
			pt, err := OpenSealed(data, goldenAD, priv)
			if err != nil {
				if pt != nil {
					t.Fatal("plaintext returned with an error")
				}
				if !isOneOf(err, ErrMalformed, ErrUnsupportedVersion, ErrAuthFailed) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			want, ok := valid[sha256.Sum256(data)]
			if !ok {
				t.Fatalf("an object the test did not seal was opened: %x", data)
			}
			if !bytes.Equal(pt, want) {
				t.Fatal("opened to the wrong plaintext")
			}
		}
	})
}

// FuzzUnpad: Unpad accepts exactly the outputs of Pad (parse then
// re-encode gives the input back), and fails only with ErrMalformed.
func FuzzUnpad(f *testing.F) {
	for _, s := range padSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Unpad(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if again := Pad(nil, out); !bytes.Equal(again, data) {
			t.Fatalf("Unpad accepted a non-canonical padding: %x", data)
		}
	})
}

type sealedSeed struct{ sealed, plaintext []byte }

// sealedSeeds are deterministic sealed objects: the golden one, a single
// recipient, the maximum number of recipients, an empty plaintext.
func sealedSeeds(t testing.TB) []sealedSeed {
	m, w, _ := testKeys(t)
	r := newDetReader("fuzz sealed seeds")
	var out []sealedSeed
	add := func(pt []byte, recips ...[32]byte) {
		s, err := SealTo(r, pt, goldenAD, recips...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sealedSeed{s, pt})
	}
	add(goldenPlaintext, w.MasterBoxPub, w.AuditBoxPub)
	add([]byte("only the master"), m.BoxKey.Public)
	add(nil, w.AuditBoxPub)
	many := [][32]byte{w.MasterBoxPub, w.AuditBoxPub}
	for len(many) < MaxSealRecipients {
		kp, _ := newBoxKeyPair(r)
		many = append(many, kp.Public)
	}
	add(pattern(100), many...)
	return out
}

// padSeeds are valid paddings of several sizes and a few invalid inputs.
func padSeeds() [][]byte {
	var out [][]byte
	for _, n := range []int{0, 1, 5, 17, 130, 4097} {
		out = append(out, Pad(nil, pattern(n)))
	}
	return append(out, nil, []byte{0, 0, 0, 1}, []byte{0, 0, 0, 1, 'x', 1}, []byte{0xff, 0xff, 0xff, 0xff, 0})
}

// corpusFile renders one []byte input in the go test fuzz v1 format.
func corpusFile(b []byte) []byte {
	return []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b))
}

// TestFuzzSeeds writes the committed seed corpora with -update and checks
// them otherwise: every generated seed must be committed unchanged.
func TestFuzzSeeds(t *testing.T) {
	corpora := map[string][][]byte{"FuzzUnpad": padSeeds()}
	for name, b := range goldenFiles(t) {
		if strings.HasSuffix(name, ".key") {
			corpora["FuzzParseKeyFile"] = append(corpora["FuzzParseKeyFile"], b)
		}
	}
	// Invalid key files too: garbage, a bare magic, a future version.
	kf := goldenFiles(t)["write.key"]
	future := append([]byte(nil), kf...)
	future[len(keyFileMagic)] = 2
	corpora["FuzzParseKeyFile"] = append(corpora["FuzzParseKeyFile"], []byte("garbage"), []byte(keyFileMagic), future)
	for _, s := range sealedSeeds(t) {
		corpora["FuzzOpenSealed"] = append(corpora["FuzzOpenSealed"], s.sealed)
	}
	for target, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			sum := sha256.Sum256(s)
			path := filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:8]))
			want := corpusFile(s)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: seed missing (run with -update): %v", target, err)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s: seed %s changed", target, path)
			}
		}
	}
}

// TestFuzzSeedCorporaPresent finds every Fuzz function in this package's
// test files and fails unless testdata/fuzz/<name> holds seeds in the
// go test fuzz v1 format: a renamed target or a moved directory must not
// lose its corpus without a word.
func TestFuzzSeedCorporaPresent(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files found: %v", err)
	}
	var targets []string
	fset := token.NewFileSet()
	for _, file := range files {
		af, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Fuzz") {
				targets = append(targets, fd.Name.Name)
			}
		}
	}
	if len(targets) < 3 {
		t.Fatalf("found only fuzz targets %v", targets)
	}
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Errorf("%s: %v", target, err)
			continue
		}
		n := 0
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				t.Errorf("%s: %s is not a go test fuzz v1 file", target, e.Name())
				continue
			}
			n++
		}
		if n < 3 {
			t.Errorf("%s: only %d seeds in %s", target, n, dir)
		}
	}
}
