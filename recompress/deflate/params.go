package deflate

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Engine names the encoder whose algorithm a Writer re-runs. The values are
// stored in recipes: they are never reused or renumbered.
type Engine uint8

const (
	// Zlib is zlib's deflate() (1.1.4 to 1.3.1), as used by pg_dump,
	// Python, Ruby, Java and Node, fed with Z_NO_FLUSH and finished with
	// Z_FINISH.
	Zlib Engine = 1
	// Gzip is the deflate of the GNU gzip program (1.x), which differs from
	// zlib in its block ends, its end of input and --rsyncable.
	Gzip Engine = 2
	// Stored writes stored blocks of recorded lengths: the output of any
	// encoder at level 0 (whose block sizes depend on its call pattern).
	Stored Engine = 3
)

func (e Engine) String() string {
	switch e {
	case Zlib:
		return "zlib"
	case Gzip:
		return "gzip"
	case Stored:
		return "stored"
	}
	return fmt.Sprintf("engine(%d)", uint8(e))
}

// Strategy is zlib's compression strategy; the values are zlib's own.
type Strategy uint8

const (
	DefaultStrategy Strategy = 0 // Z_DEFAULT_STRATEGY
	Filtered        Strategy = 1 // Z_FILTERED
	HuffmanOnly     Strategy = 2 // Z_HUFFMAN_ONLY
	RLE             Strategy = 3 // Z_RLE
	Fixed           Strategy = 4 // Z_FIXED
)

func (s Strategy) String() string {
	switch s {
	case DefaultStrategy:
		return "default"
	case Filtered:
		return "filtered"
	case HuffmanOnly:
		return "huffman"
	case RLE:
		return "rle"
	case Fixed:
		return "fixed"
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// Rsync selects a variant of GNU gzip's --rsyncable.
type Rsync uint8

const (
	RsyncOff      Rsync = 0
	RsyncUpstream Rsync = 1 // gzip 1.7 and later (= Debian's original patch)
	RsyncDebian14 Rsync = 2 // Debian's patch as shipped with gzip 1.4
	RsyncDebian16 Rsync = 3 // Debian's patch as shipped with gzip 1.6
)

func (r Rsync) String() string {
	switch r {
	case RsyncOff:
		return "off"
	case RsyncUpstream:
		return "upstream"
	case RsyncDebian14:
		return "debian-1.4"
	case RsyncDebian16:
		return "debian-1.6"
	}
	return fmt.Sprintf("rsync(%d)", uint8(r))
}

// Variant flags select the behaviour of older releases where it differs
// from the current one. Bits are never reused.
type Variant uint8

const (
	// ZlibFixedBefore1213: with Z_FIXED, zlib 1.2.2.2 to 1.2.12 compared
	// a stored block against the dynamic-tree size (fixed in 1.2.13).
	ZlibFixedBefore1213 Variant = 1 << 0
	// GzipBefore15: gzip before 1.5 left stale window bytes after the end
	// of input instead of two zero bytes; only the final tokens can differ.
	GzipBefore15 Variant = 1 << 1
)

// StoredRun is a run of Count stored blocks of Len bytes each.
type StoredRun struct {
	Len   uint16
	Count uint32
}

// MaxStoredRuns bounds the block list of a Stored engine record.
const MaxStoredRuns = 1 << 16

// Params is everything needed to re-run an encoder: which engine, which
// release behaviour, and the caller's settings.
type Params struct {
	Engine     Engine
	Variant    Variant
	Level      int      // 1..9 (Zlib, Gzip)
	Strategy   Strategy // Zlib only
	WindowBits int      // 9..15 (Zlib; zlib turns 8 into 9); Gzip: 15
	MemLevel   int      // 1..9 (Zlib); Gzip: 8
	Rsync      Rsync    // Gzip only

	// Runs lists the stored blocks of a Stored stream; the last block of
	// the last run carries the final-block flag.
	Runs []StoredRun
}

// ZlibParams returns the parameters of zlib's deflateInit2(level,
// Z_DEFLATED, windowBits, memLevel, strategy) for a current zlib.
func ZlibParams(level, windowBits, memLevel int, s Strategy) Params {
	if windowBits == 8 {
		windowBits = 9
	}
	return Params{Engine: Zlib, Level: level, Strategy: s, WindowBits: windowBits, MemLevel: memLevel}
}

// GzipParams returns the parameters of `gzip -level [--rsyncable]`.
func GzipParams(level int, r Rsync) Params {
	return Params{Engine: Gzip, Level: level, WindowBits: 15, MemLevel: 8, Rsync: r}
}

// ErrParams reports parameters no engine supports.
var ErrParams = errors.New("deflate: invalid parameters")

// Validate reports whether p names a supported encoder configuration.
func (p Params) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrParams, fmt.Sprintf(format, a...))
	}
	switch p.Engine {
	case Zlib:
		if p.Level < 1 || p.Level > 9 {
			return bad("zlib level %d not in 1..9 (level 0 is the stored engine)", p.Level)
		}
		if p.Strategy > Fixed {
			return bad("zlib strategy %d", p.Strategy)
		}
		if p.WindowBits < 9 || p.WindowBits > 15 {
			return bad("zlib window bits %d not in 9..15", p.WindowBits)
		}
		if p.MemLevel < 1 || p.MemLevel > 9 {
			return bad("zlib memory level %d not in 1..9", p.MemLevel)
		}
		if p.Rsync != RsyncOff || p.Variant&^ZlibFixedBefore1213 != 0 || len(p.Runs) != 0 {
			return bad("zlib with gzip-only settings")
		}
	case Gzip:
		if p.Level < 1 || p.Level > 9 {
			return bad("gzip level %d not in 1..9", p.Level)
		}
		if p.WindowBits != 15 || p.MemLevel != 8 || p.Strategy != DefaultStrategy {
			return bad("gzip has fixed window and memory settings")
		}
		if p.Rsync > RsyncDebian16 || p.Variant&^GzipBefore15 != 0 || len(p.Runs) != 0 {
			return bad("gzip with unknown rsync variant or zlib-only settings")
		}
		if p.Rsync != RsyncOff && p.Rsync != RsyncUpstream {
			return bad("gzip --rsyncable variant %v is not supported yet", p.Rsync)
		}
	case Stored:
		if len(p.Runs) == 0 || len(p.Runs) > MaxStoredRuns {
			return bad("stored engine with %d runs", len(p.Runs))
		}
		for _, r := range p.Runs {
			if r.Count == 0 {
				return bad("stored run of zero blocks")
			}
		}
	default:
		return bad("unknown engine %d", p.Engine)
	}
	return nil
}

func (p Params) String() string {
	switch p.Engine {
	case Zlib:
		s := fmt.Sprintf("zlib -%d wbits=%d mem=%d %v", p.Level, p.WindowBits, p.MemLevel, p.Strategy)
		if p.Variant&ZlibFixedBefore1213 != 0 {
			s += " (before 1.2.13)"
		}
		return s
	case Gzip:
		s := fmt.Sprintf("gzip -%d", p.Level)
		if p.Rsync != RsyncOff {
			s += " --rsyncable=" + p.Rsync.String()
		}
		if p.Variant&GzipBefore15 != 0 {
			s += " (before 1.5)"
		}
		return s
	case Stored:
		n := uint64(0)
		for _, r := range p.Runs {
			n += uint64(r.Count)
		}
		return fmt.Sprintf("stored (%d blocks)", n)
	}
	return p.Engine.String()
}

// paramsVersion is the version byte of the binary parameter record.
const paramsVersion = 1

// ParamsVersion is the version of the deflate parameter records this
// release writes and the only one it reads (docs/FORMAT.md).
const ParamsVersion = paramsVersion

// MarshalBinary encodes p as the compact, versioned record of
// docs/FORMAT.md ("deflate parameter record").
func (p Params) MarshalBinary() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := []byte{paramsVersion, byte(p.Engine), byte(p.Variant), byte(p.Level),
		byte(p.Strategy), byte(p.WindowBits), byte(p.MemLevel), byte(p.Rsync)}
	if p.Engine == Stored {
		b = binary.AppendUvarint(b, uint64(len(p.Runs)))
		for _, r := range p.Runs {
			b = binary.AppendUvarint(b, uint64(r.Len))
			b = binary.AppendUvarint(b, uint64(r.Count))
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary. It rejects
// unknown versions, trailing bytes and anything Validate rejects.
func (p *Params) UnmarshalBinary(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("%w: record of %d bytes is too short", ErrParams, len(b))
	}
	if b[0] != paramsVersion {
		return fmt.Errorf("%w: record version %d is unknown", ErrParams, b[0])
	}
	q := Params{Engine: Engine(b[1]), Variant: Variant(b[2]), Level: int(b[3]),
		Strategy: Strategy(b[4]), WindowBits: int(b[5]), MemLevel: int(b[6]), Rsync: Rsync(b[7])}
	rest := b[8:]
	if q.Engine == Stored {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n == 0 || n > MaxStoredRuns {
			return fmt.Errorf("%w: bad stored run count", ErrParams)
		}
		rest = rest[k:]
		q.Runs = make([]StoredRun, 0, n)
		for i := uint64(0); i < n; i++ {
			l, k1 := binary.Uvarint(rest)
			if k1 <= 0 || l > 0xffff {
				return fmt.Errorf("%w: bad stored block length", ErrParams)
			}
			rest = rest[k1:]
			c, k2 := binary.Uvarint(rest)
			if k2 <= 0 || c == 0 || c > 1<<32-1 {
				return fmt.Errorf("%w: bad stored block count", ErrParams)
			}
			rest = rest[k2:]
			q.Runs = append(q.Runs, StoredRun{Len: uint16(l), Count: uint32(c)})
		}
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrParams, len(rest))
	}
	if err := q.Validate(); err != nil {
		return err
	}
	*p = q
	return nil
}
