package faultproxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers every connection with the bytes it sends, then
// closes its side once the client closed its own.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string, cfg Config) *Proxy {
	t.Helper()
	p, err := New(target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// roundTrip sends data through addr to the echo server (writing and
// reading at once) and returns what came back and the first error.
func roundTrip(t *testing.T, addr string, data []byte) ([]byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// A broken test must not hang: nothing here takes seconds.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(c)
	if err := <-werr; err != nil && rerr == nil {
		rerr = err
	}
	if rerr == nil && len(got) < len(data) {
		rerr = io.ErrUnexpectedEOF
	}
	return got, rerr
}

func TestForwardsFaithfully(t *testing.T) {
	p := newProxy(t, echoServer(t), Config{})
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3<<20 + 17} {
		data := payload(uint64(n), n)
		got, err := roundTrip(t, p.Addr(), data)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: %d came back, not the same", n, len(got))
		}
	}
	st := p.Stats()
	if st.Drops != 0 || st.Delays != 0 || st.Refused != 0 || st.Conns != 6 {
		t.Fatalf("stats of a faithful proxy: %+v", st)
	}
	if want := int64(3<<20 + 17 + 3*chunkSize + 1); st.Bytes[Up] != want || st.Bytes[Down] != want {
		t.Fatalf("bytes forwarded: %v, want %d each way", st.Bytes, want)
	}
}

func TestDelaysKeepData(t *testing.T) {
	p := newProxy(t, echoServer(t), Config{Seed: 3, DelayRate: 0.5, MaxDelay: 2 * time.Millisecond})
	data := payload(1, 1<<20)
	for range 4 {
		got, err := roundTrip(t, p.Addr(), data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes came back through delays, not the same", len(got))
		}
	}
	if st := p.Stats(); st.Delays == 0 || st.Drops != 0 {
		t.Fatalf("stats: %+v, want delays and no drops", st)
	}
}

// TestDropsEveryConnection: with DropRate 1 and every cut inside what the
// connection carries, each connection is cut, and what came back is a
// prefix of what was sent.
func TestDropsEveryConnection(t *testing.T) {
	const conns = 30
	p := newProxy(t, echoServer(t), Config{Seed: 7, DropRate: 1, DropWithin: 64 << 10})
	data := payload(2, 256<<10)
	for i := range conns {
		got, err := roundTrip(t, p.Addr(), data)
		if err == nil {
			t.Fatalf("connection %d went through whole", i)
		}
		if len(got) >= len(data) || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("connection %d: %d bytes came back, not a prefix of the %d sent", i, len(got), len(data))
		}
	}
	st := p.Stats()
	if st.Drops != conns {
		t.Fatalf("drops: %d, want %d (%+v)", st.Drops, conns, st)
	}
	if st.DropsBy[Up] == 0 || st.DropsBy[Down] == 0 {
		t.Fatalf("cuts by direction: %v, want both", st.DropsBy)
	}
}

// dropPattern runs connections one at a time and returns which were cut.
func dropPattern(t *testing.T, target string, cfg Config, conns int, data []byte) ([]bool, Stats) {
	t.Helper()
	p := newProxy(t, target, cfg)
	cut := make([]bool, conns)
	for i := range cut {
		got, err := roundTrip(t, p.Addr(), data)
		if err != nil {
			cut[i] = true
			if !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("connection %d: what came back is not a prefix of what was sent", i)
			}
		} else if !bytes.Equal(got, data) {
			t.Fatalf("connection %d: went through with other bytes", i)
		}
	}
	return cut, p.Stats()
}

// TestDropRateSeeded: about DropRate of the connections are cut, the rest
// go through intact, and the same seed cuts the same ones.
func TestDropRateSeeded(t *testing.T) {
	const conns = 40
	target := echoServer(t)
	cfg := Config{Seed: 11, DropRate: 0.5, DropWithin: 100 << 10, DelayRate: 0.1, MaxDelay: time.Millisecond}
	data := payload(3, 128<<10)
	a, st := dropPattern(t, target, cfg, conns, data)
	b, _ := dropPattern(t, target, cfg, conns, data)
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("connection %d: cut %v the first time, %v the second, with one seed", i, a[i], b[i])
		}
		if a[i] {
			n++
		}
	}
	if n == 0 || n == conns || int64(n) != st.Drops {
		t.Fatalf("%d of %d connections cut, %d drops counted", n, conns, st.Drops)
	}
}

// TestStalls: a stalled connection forwards a prefix, then nothing, and
// stays open until the client gives up; then it ends.
func TestStalls(t *testing.T) {
	const conns = 5
	p := newProxy(t, echoServer(t), Config{Seed: 5, StallRate: 1, DropWithin: 64 << 10})
	data := payload(6, 256<<10)
	for i := range conns {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		go c.Write(data) // no CloseWrite: the client waits, as an HTTP client does
		// A stalled connection sends nothing more: the read times out
		// (it does not end).
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		got, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("connection %d: %v after %d bytes, want a timeout", i, err, len(got))
		}
		if len(got) >= len(data) || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("connection %d: %d bytes came back, not a prefix of the %d sent", i, len(got), len(data))
		}
		c.Close()
	}
	if st := p.Stats(); st.Stalls != conns || st.Drops != 0 {
		t.Fatalf("stats: %+v, want %d stalls", st, conns)
	}
	// The client closed each: every link ends.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.open)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stalled links still open after their clients closed", n)
		}
	}
}

func TestRefuse(t *testing.T) {
	p := newProxy(t, echoServer(t), Config{})
	data := payload(4, 1000)
	p.Refuse(time.Hour)
	if _, err := roundTrip(t, p.Addr(), data); err == nil {
		t.Fatal("a connection went through while the proxy refused")
	}
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("refused: %d, want 1", st.Refused)
	}
	p.Refuse(0)
	got, err := roundTrip(t, p.Addr(), data)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after refusing: %v, %d bytes", err, len(got))
	}
}

// TestTargetDown: a connection to a target that is not there is reset,
// not held open.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr, Config{})
	if _, err := roundTrip(t, p.Addr(), payload(5, 10)); err == nil {
		t.Fatal("a connection to a closed port went through")
	}
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("refused: %d, want 1", st.Refused)
	}
}

// TestCutAllAndClose: open connections are cut on demand and by Close,
// which returns (the goroutines end).
func TestCutAllAndClose(t *testing.T) {
	p, err := New(echoServer(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	open := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	p.CutAll()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection read on after CutAll")
	}
	c.Close()
	if st := p.Stats(); st.Drops != 1 {
		t.Fatalf("drops: %d, want 1", st.Drops)
	}
	c = open()
	defer c.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection read on after Close")
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("a closed proxy accepted a connection")
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{{DropRate: -0.1}, {DropRate: 1.5}, {StallRate: -1}, {DropRate: 0.6, StallRate: 0.6}, {DelayRate: 2}, {DropWithin: -1}, {MaxDelay: 2 * MaxMaxDelay}} {
		if p, err := New("127.0.0.1:1", cfg); err == nil {
			p.Close()
			t.Errorf("New accepted %+v", cfg)
		}
	}
}
