package deflate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The reference implementations: the real zlib (through python3's zlib
// module, which links the system's libz) and the real GNU gzip program.

const zlibServer = `
import sys, zlib, json, struct, time
inp = sys.stdin.buffer
out = sys.stdout.buffer
out.write(struct.pack('<Q', 0) + zlib.ZLIB_RUNTIME_VERSION.encode().ljust(16, b' '))
out.flush()
while True:
    line = inp.readline()
    if not line:
        break
    req = json.loads(line)
    n = req['len']
    data = inp.read(n)
    reps = req.get('reps', 1)
    best = None
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        c = zlib.compressobj(req['level'], zlib.DEFLATED, req['wbits'], req['mem'], req['strategy'])
        step = req.get('step', 0) or max(n, 1)
        res = []
        for i in range(0, n, step):
            res.append(c.compress(data[i:i+step]))
        res.append(c.flush())
        r = b''.join(res)
        el = time.perf_counter_ns() - t0
        best = el if best is None else min(best, el)
    if req.get('timing'):
        r = struct.pack('<Q', best)
    out.write(struct.pack('<Q', len(r)))
    out.write(r)
    out.flush()
`

type zlibRef struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	w       io.WriteCloser
	r       *bufio.Reader
	version string
}

var (
	refOnce sync.Once
	refZlib *zlibRef
	refErr  error
)

// zlibReference starts (once) the python3 process that compresses with the
// real zlib. Tests fail, not skip, when python3 is missing.
func zlibReference(t testing.TB) *zlibRef {
	t.Helper()
	refOnce.Do(func() {
		cmd := exec.Command("python3", "-c", zlibServer)
		w, err := cmd.StdinPipe()
		if err != nil {
			refErr = err
			return
		}
		rp, err := cmd.StdoutPipe()
		if err != nil {
			refErr = err
			return
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			refErr = fmt.Errorf("python3 (the zlib reference) cannot start: %w", err)
			return
		}
		r := bufio.NewReaderSize(rp, 1<<20)
		var hdr [24]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			refErr = fmt.Errorf("zlib reference did not answer: %w", err)
			return
		}
		refZlib = &zlibRef{cmd: cmd, w: w, r: r, version: string(bytes.TrimSpace(hdr[8:]))}
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refZlib
}

// compress returns zlib's raw deflate output (windowBits negated) for data
// fed in pieces of step bytes (0: all at once).
func (z *zlibRef) compress(t testing.TB, level, wbits, mem int, s Strategy, step int, data []byte) []byte {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	req, _ := json.Marshal(map[string]int{"level": level, "wbits": -wbits, "mem": mem,
		"strategy": int(s), "len": len(data), "step": step})
	if _, err := z.w.Write(append(req, '\n')); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	if _, err := z.w.Write(data); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	var n [8]byte
	if _, err := io.ReadFull(z.r, n[:]); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	out := make([]byte, binary.LittleEndian.Uint64(n[:]))
	if _, err := io.ReadFull(z.r, out); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	return out
}

// timeCompress returns the best wall time, in nanoseconds, of the real
// zlib compressing data (measured inside the reference process).
func (z *zlibRef) timeCompress(t testing.TB, level, wbits, mem int, s Strategy, data []byte, reps int) int64 {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	req, _ := json.Marshal(map[string]int{"level": level, "wbits": -wbits, "mem": mem,
		"strategy": int(s), "len": len(data), "timing": 1, "reps": reps})
	if _, err := z.w.Write(append(req, '\n')); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	if _, err := z.w.Write(data); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	var n [16]byte
	if _, err := io.ReadFull(z.r, n[:]); err != nil {
		t.Fatalf("zlib reference: %v", err)
	}
	return int64(binary.LittleEndian.Uint64(n[8:]))
}

// gzipReference runs the real `gzip -level [--rsyncable]` on data (from a
// regular file, as gzip reads backups) and returns the raw deflate stream
// between its 10-byte header and 8-byte trailer.
func gzipReference(t testing.TB, level int, rsyncable bool, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Fatalf("GNU gzip is needed for the differential tests: %v", err)
	}
	f := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{fmt.Sprintf("-%d", level), "-c", "-n"}
	if rsyncable {
		args = append(args, "--rsyncable")
	}
	args = append(args, f)
	out, err := exec.Command("gzip", args...).Output()
	if err != nil {
		t.Fatalf("gzip %v: %v", args, err)
	}
	if len(out) < 18 || out[3] != 0 {
		t.Fatalf("gzip wrote an unexpected header % x", out[:min(len(out), 10)])
	}
	return out[10 : len(out)-8]
}

// ours compresses data with p, writing it in pieces of step bytes.
func ours(t testing.TB, p Params, step int, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	if step <= 0 {
		step = len(data) + 1
	}
	for i := 0; i < len(data); i += step {
		if _, err := w.Write(data[i:min(i+step, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// firstDiff returns the first offset where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return n
	}
	return -1
}
