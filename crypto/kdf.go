package crypto

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// KDFParams are the argon2id parameters of a passphrase-protected key
// file. They are stored in the file, so a file opens with the parameters
// it was made with, whatever machine reads it.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes; part of the result, not only a speed setting
}

// KDF bounds. The floors apply when a key file is made (unless
// [TestOnlyFastKDF] was called); the ceilings apply when one is read, so a
// damaged or hostile file cannot make the reader spend unbounded memory or
// time.
const (
	// DefaultKDFTarget is how long calibration aims for one derivation
	// to take.
	DefaultKDFTarget = 500 * time.Millisecond
	// DefaultKDFMemoryKiB is the memory calibration uses: 64 MiB, which
	// a 1 GB forum droplet can spare.
	DefaultKDFMemoryKiB = 64 << 10

	MinKDFTime      = 3                   // floor: RFC 9106's second recommendation (t=3, m=64 MiB)
	MinKDFMemoryKiB = DefaultKDFMemoryKiB // floor
	MaxKDFTime      = 256                 // ceiling when reading a file
	MaxKDFMemoryKiB = 1 << 20             // ceiling when reading a file: 1 GiB
	MaxKDFThreads   = 64                  // ceiling when reading a file
	maxCalibThreads = 4
)

// fastKDFParams are what key files get after TestOnlyFastKDF.
var fastKDFParams = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

var fastKDF atomic.Bool

// TestOnlyFastKDF makes key files created from now on in this process use
// trivially weak argon2id parameters (1 pass, 64 KiB) and lifts the floors,
// so that tests run fast. Never call it outside tests: it is the
// counterpart of restic's TestUseLowSecurityKDFParameters and age's
// testOnlyConfigureScryptIdentity. Reading key files is unaffected.
func TestOnlyFastKDF() { fastKDF.Store(true) }

var (
	calibrateOnce sync.Once
	calibrated    KDFParams
)

// defaultKDFParams returns the parameters used when the caller gives none:
// the fast ones under TestOnlyFastKDF, else a calibration (done once per
// process).
func defaultKDFParams() KDFParams {
	if fastKDF.Load() {
		return fastKDFParams
	}
	calibrateOnce.Do(func() { calibrated = CalibrateKDF(DefaultKDFTarget) })
	return calibrated
}

// CalibrateKDF returns argon2id parameters for which one derivation takes
// about target on this machine: [DefaultKDFMemoryKiB] of memory, up to 4
// threads, and as many passes as fit in target, but never fewer than
// [MinKDFTime] nor more than [MaxKDFTime]. It runs argon2id twice (one
// pass each), so it takes a fraction of a second.
func CalibrateKDF(target time.Duration) KDFParams {
	return calibrate(target, func(p KDFParams) time.Duration {
		start := time.Now()
		argon2.IDKey([]byte("larder calibration"), make([]byte, keyFileSaltSize), p.Time, p.MemoryKiB, p.Threads, KeySize)
		return time.Since(start)
	})
}

// calibrate computes the parameters from measure, which times one
// derivation with the given parameters.
func calibrate(target time.Duration, measure func(KDFParams) time.Duration) KDFParams {
	threads := min(max(runtime.NumCPU(), 1), maxCalibThreads)
	p := KDFParams{Time: 1, MemoryKiB: DefaultKDFMemoryKiB, Threads: uint8(threads)}
	d := min(measure(p), measure(p)) // the faster of two runs: less noise
	if d <= 0 {
		d = 1
	}
	passes := (int64(target) + int64(d) - 1) / int64(d)
	p.Time = uint32(min(max(passes, MinKDFTime), MaxKDFTime))
	return p
}

// check validates p against the reading ceilings and, when creating and
// not under TestOnlyFastKDF, the floors.
func (p KDFParams) check(creating bool) error {
	switch {
	case p.Time < 1 || p.Time > MaxKDFTime:
		return malformed("key file", "argon2id time %d not in 1..%d", p.Time, MaxKDFTime)
	case p.Threads < 1 || p.Threads > MaxKDFThreads:
		return malformed("key file", "argon2id threads %d not in 1..%d", p.Threads, MaxKDFThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxKDFMemoryKiB:
		return malformed("key file", "argon2id memory %d KiB not in %d..%d", p.MemoryKiB, 8*uint32(p.Threads), MaxKDFMemoryKiB)
	}
	if creating && !fastKDF.Load() && (p.Time < MinKDFTime || p.MemoryKiB < MinKDFMemoryKiB) {
		return fmt.Errorf("crypto: key file: %w: time %d (min %d), memory %d KiB (min %d)",
			ErrWeakKDF, p.Time, MinKDFTime, p.MemoryKiB, MinKDFMemoryKiB)
	}
	return nil
}

// derive runs argon2id.
func (p KDFParams) derive(passphrase []byte, salt *[keyFileSaltSize]byte) [KeySize]byte {
	var k [KeySize]byte
	out := argon2.IDKey(passphrase, salt[:], p.Time, p.MemoryKiB, p.Threads, KeySize)
	copy(k[:], out)
	clear(out)
	return k
}
