// Package benchutil measures child processes for the benchmarks: wall
// time and peak resident memory, read from /proc while they run (the
// rusage of a child started from a big parent counts the parent's pages).
package benchutil

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Result is one measured run.
type Result struct {
	Wall   time.Duration
	CPU    time.Duration // user and system time of the process
	PeakMB float64       // MiB
}

// Run starts cmd, waits for it, and returns its wall time, CPU time and
// peak RSS.
func Run(cmd *exec.Cmd) (Result, error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("%v: %w", cmd.Args, err)
	}
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	peak := make(chan float64)
	stop := make(chan struct{})
	go func() {
		hwm := 0.0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb := VmHWM(status); kb > hwm {
				hwm = kb
			}
			select {
			case <-stop:
				peak <- hwm / 1024
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	close(stop)
	p := <-peak
	if err != nil {
		return Result{}, fmt.Errorf("%v: %w", cmd.Args, err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return Result{Wall: time.Since(start), CPU: cpu, PeakMB: p}, nil
}

// VmHWM reads the peak resident set (kB) from a /proc status file.
func VmHWM(status string) float64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return 0
}

// DirSize is the bytes of the regular files under dir.
func DirSize(dir string) int64 {
	var n int64
	filepathWalk(dir, func(size int64) { n += size })
	return n
}

// ChildEnv names, in a benchmark's child process (the test binary run
// again), the job it is to do.
const ChildEnv = "LARDER_BENCH_CHILD"

// Main is a test binary's TestMain: in a child process started with
// ChildEnv set it runs child(job) and exits; otherwise it runs the tests.
func Main(m interface{ Run() int }, child func(job string) error) {
	if job := os.Getenv(ChildEnv); job != "" {
		if err := child(job); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
