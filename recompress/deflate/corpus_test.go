package deflate

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Inputs for the differential tests: each kind stresses another part of the
// encoders (match finder, lazy evaluation, block splitting, stored blocks,
// tree-length overflow, window slides).

type input struct {
	name string
	data []byte
}

func genSQL(rng *rand.Rand, n int) []byte {
	var b strings.Builder
	b.WriteString("--\n-- PostgreSQL database dump\n--\n\nCOPY public.posts (id, user_id, topic_id, raw, cooked, created_at) FROM stdin;\n")
	id := 1
	words := strings.Fields("the a of to and in is it that for on with as was at by this be are from " +
		"discourse forum topic reply post user admin like thanks please help error upgrade plugin " +
		"backup restore database server docker nginx rails sidekiq redis postgres email")
	for b.Len() < n {
		fmt.Fprintf(&b, "%d\t%d\t%d\t", id, 1+rng.IntN(5000), 1+rng.IntN(20000))
		k := 5 + rng.IntN(60)
		for i := 0; i < k; i++ {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString("\t<p>")
		for i := 0; i < k/2; i++ {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "</p>\t2026-%02d-%02d %02d:%02d:%02d.%06d+00\n", 1+rng.IntN(12), 1+rng.IntN(28),
			rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000000))
		id++
	}
	return []byte(b.String())[:n]
}

func genProse(rng *rand.Rand, n int) []byte {
	syll := []string{"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "an", "er", "in", "on", "th", "st"}
	var b []byte
	for len(b) < n {
		w := 1 + rng.IntN(4)
		for i := 0; i < w; i++ {
			b = append(b, syll[rng.IntN(len(syll))]...)
		}
		switch rng.IntN(20) {
		case 0:
			b = append(b, ".\n\n"...)
		case 1, 2:
			b = append(b, ", "...)
		default:
			b = append(b, ' ')
		}
	}
	return b[:n]
}

func genRandom(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func genRuns(rng *rand.Rand, n int) []byte {
	var b []byte
	for len(b) < n {
		c := byte(rng.IntN(4))
		l := 1 + rng.IntN(600)
		for i := 0; i < l; i++ {
			b = append(b, c)
		}
	}
	return b[:n]
}

func genCycle(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func genMixed(rng *rand.Rand, n int) []byte {
	var b []byte
	for len(b) < n {
		seg := 1 + rng.IntN(40000)
		if rng.IntN(2) == 0 {
			b = append(b, genSQL(rng, seg)...)
		} else {
			b = append(b, genRandom(rng, seg)...)
		}
	}
	return b[:n]
}

// skewed makes symbol frequencies that force Huffman code lengths past 15
// (the bit-length overflow repair of gen_bitlen).
func genSkewed(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		// Fibonacci-like frequencies over 30 symbols.
		x := rng.Float64()
		s := 0
		for x < 0.5 && s < 40 {
			x *= 1.6
			s++
		}
		b = append(b, byte('A'+s))
	}
	return b
}

// corpus returns the differential-test inputs; long adds the big ones.
func corpus(long bool) []input {
	rng := rand.New(rand.NewPCG(20261122, 1))
	in := []input{
		{"empty", nil},
		{"one", []byte{'x'}},
		{"sql-200k", genSQL(rng, 200_000)},
		{"prose-150k", genProse(rng, 150_000)},
		{"random-100k", genRandom(rng, 100_000)},
		{"zeros-300k", make([]byte, 300_000)},
		{"runs-200k", genRuns(rng, 200_000)},
		{"cycle-100k", genCycle(100_000)},
		{"mixed-300k", genMixed(rng, 300_000)},
		{"skewed-120k", genSkewed(rng, 120_000)},
	}
	for _, n := range []int{2, 3, 4, 5, 17, 100, 258, 259, 261, 262, 263, 300} {
		in = append(in, input{fmt.Sprintf("sql-%d", n), genSQL(rng, n)})
	}
	// Around the window and buffer sizes of every windowBits.
	for _, n := range []int{1 << 9, 1 << 10, 1 << 12, 1 << 15, 1 << 16, 1<<16 - minLookahead} {
		for _, d := range []int{-1, 0, 1} {
			in = append(in, input{fmt.Sprintf("mixed-%d", n+d), genMixed(rng, n+d)})
		}
	}
	if long {
		in = append(in,
			input{"sql-4m", genSQL(rng, 4<<20)},
			input{"mixed-4m", genMixed(rng, 4<<20)},
			input{"random-2m", genRandom(rng, 2<<20)},
		)
	}
	return in
}

// bigInput is a stream of more than 64 MiB that slides the window many
// times: SQL text with stretches of random bytes and long runs.
func bigInput() []byte {
	rng := rand.New(rand.NewPCG(64, 64))
	n := 64<<20 + 12345
	b := make([]byte, 0, n)
	for len(b) < n {
		switch rng.IntN(10) {
		case 0:
			b = append(b, genRandom(rng, 1+rng.IntN(200000))...)
		case 1:
			b = append(b, genRuns(rng, 1+rng.IntN(100000))...)
		default:
			b = append(b, genSQL(rng, 1+rng.IntN(500000))...)
		}
	}
	return b[:n]
}
