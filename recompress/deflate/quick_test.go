package deflate

import (
	"math/rand/v2"
	"testing"
)

func TestQuickZlib(t *testing.T) {
	z := zlibReference(t)
	t.Logf("zlib %s", z.version)
	rng := rand.New(rand.NewPCG(1, 2))
	text := makeText(rng, 300000)
	for level := 1; level <= 9; level++ {
		want := z.compress(t, level, 15, 8, DefaultStrategy, 0, text)
		got := ours(t, ZlibParams(level, 15, 8, DefaultStrategy), 0, text)
		if d := firstDiff(got, want); d >= 0 {
			t.Errorf("level %d: differs at %d of %d/%d", level, d, len(got), len(want))
		}
	}
}

func TestQuickGzip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := makeText(rng, 300000)
	for level := 1; level <= 9; level++ {
		for _, rs := range []bool{false, true} {
			want := gzipReference(t, level, rs, text)
			r := RsyncOff
			if rs {
				r = RsyncUpstream
			}
			got := ours(t, GzipParams(level, r), 0, text)
			if d := firstDiff(got, want); d >= 0 {
				t.Errorf("level %d rsync %v: differs at %d of %d/%d", level, rs, d, len(got), len(want))
			}
		}
	}
}

func makeText(rng *rand.Rand, n int) []byte {
	words := []string{"the", "forum", "post", "INSERT", "INTO", "users", "VALUES", "(", ")", "'", ",", "\n",
		"discourse", "topic", "reply", "like", "2026-11-22", "hello", "world", "of", "and", "a", "to", "in"}
	var b []byte
	for len(b) < n {
		w := words[rng.IntN(len(words))]
		b = append(b, w...)
		if rng.IntN(3) == 0 {
			b = append(b, ' ')
		}
		if rng.IntN(50) == 0 {
			b = append(b, byte(rng.IntN(256)))
		}
	}
	return b[:n]
}
