package recompress

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// TestAmbiguousHeadExact: a backup whose first megabytes are
// incompressible (a tar that starts with dump.sql.gz) looks the same at
// several gzip levels until later content; Identify names the survivors
// and Unpack verifies them side by side, so every level of the real GNU
// gzip is rebuilt exactly, not kept verbatim from where the first guess
// diverged.
func TestAmbiguousHeadExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 3<<19)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var text strings.Builder
	for i := 0; text.Len() < 1<<20; i++ {
		fmt.Fprintf(&text, "%d\t%d\tA reply in topic %d, quoting post %d: %s\n", i, rng.IntN(5000), rng.IntN(900), rng.IntN(90000),
			strings.Repeat("lorem ipsum dolor ", 1+rng.IntN(12)))
	}
	data = append(data, text.String()...)
	ambiguous := 0
	for level := 2; level <= 9; level++ {
		gz := run(t, data, "gzip", fmt.Sprintf("-%d", level), "-n", "-c")
		hdr, err := readGzipHeader(bufio.NewReader(bytes.NewReader(gz)))
		if err != nil {
			t.Fatal(err)
		}
		head := gz[len(hdr.raw):]
		res, err := deflate.Identify(head[:deflate.IdentifyPrefix], hintFor(hdr, 0))
		if err != nil {
			t.Fatalf("gzip -%d: %v", level, err)
		}
		if res.Survivors > 1 {
			ambiguous++
		}
		r, _ := roundTrip(t, fmt.Sprintf("gzip-%d", level), gz)
		l := r.Summary.Layers
		if len(l) != 1 || l[0].Mode != "exact" || l[0].Engine != fmt.Sprintf("gzip -%d", level) {
			t.Errorf("gzip -%d (head fits %d candidates, first %v): layers %+v", level, res.Survivors, res.Params, l)
		}
	}
	if ambiguous == 0 {
		t.Fatal("no level was ambiguous on the head: the test no longer tests what it names")
	}
	t.Logf("%d of 8 levels were ambiguous on the first %d bytes", ambiguous, deflate.IdentifyPrefix)
}
