package recompress

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"
)

type discardSink struct{ n []uint64 }

func (d *discardSink) Stream(i int, k Kind) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestUnpackBig(t *testing.T) {
	f, err := os.Open(os.Getenv("BIGFILE"))
	if err != nil {
		t.Skip()
	}
	defer f.Close()
	st := time.Now()
	res, err := Unpack(context.Background(), f, &discardSink{}, Options{Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fi, _ := f.Stat()
	el := time.Since(st)
	t.Logf("%d bytes in %v: %.1f MB/s; exact=%v; heap sys %d MiB", fi.Size(), el, float64(fi.Size())/1e6/el.Seconds(), res.Summary.Exact, ms.HeapSys>>20)
	for _, l := range res.Summary.Layers {
		t.Logf("%+v", l)
	}
	for _, s := range res.Summary.Streams {
		t.Logf("%+v", s)
	}
}
