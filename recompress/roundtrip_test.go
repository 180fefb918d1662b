package recompress

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTripCommitted(t *testing.T) {
	for _, f := range committed(t) {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, sink := roundTrip(t, f, data)
			enc, _ := res.Recipe.MarshalBinary()
			t.Logf("%s: %d bytes, %d streams, recipe %d bytes, exact=%v", filepath.Base(f), len(data), len(sink.streams), len(enc), res.Summary.Exact)
			for _, l := range res.Summary.Layers {
				t.Logf("  %s: %s %s %d/%d", l.Where, l.Engine, l.Mode, l.Exact, l.Bytes)
			}
			for _, w := range res.Warnings {
				t.Errorf("warning: %v", w)
			}
			if !res.Summary.Exact {
				t.Errorf("not exact")
			}
		})
	}
}
