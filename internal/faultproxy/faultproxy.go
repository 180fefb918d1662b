// Package faultproxy is a TCP proxy for tests that breaks the network on
// purpose: it forwards loopback connections to a target address and, at
// random (a seeded math/rand, so the plan of faults repeats), cuts
// connections part way through, in either direction, stalls them, delays
// what it forwards, and can be told to refuse new connections for a
// while. It
// counts what it did, so a test can check that faults really happened.
//
// # Faults
//
// Each accepted connection draws its plan when it is accepted: with
// probability [Config.DropRate] it is cut after a random number of bytes
// (below [Config.DropWithin], drawn log-uniformly so that a connection
// carrying a short request is as likely to be cut as one carrying
// megabytes) in one direction, chosen at random (client to target or
// back). At the cut the bytes before it are forwarded and
// both sides are closed, either with a reset or with a plain close, also
// at random. With probability [Config.StallRate] it stalls instead: at
// that point the proxy stops forwarding that direction (what it reads is
// thrown away) and holds the client's connection open until the client
// closes it (or Close): the client hears nothing more, whatever the target
// does. A cut or stall planned past the end of what the connection
// carries never happens and is not counted.
//
// Every chunk read from either side is, with probability
// [Config.DelayRate], held back for a random time of at most
// [Config.MaxDelay] before it is forwarded. Bytes that get through are
// never changed or reordered.
//
// While [Proxy.Refuse] is in force, new connections are reset as soon as
// they are accepted. A connection whose target cannot be reached is reset
// too, as the client would see without the proxy.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config says which faults a proxy injects. The zero Config forwards
// faithfully.
type Config struct {
	// Seed seeds the random choices.
	Seed uint64
	// DropRate is the share (0 to 1) of connections that are cut.
	DropRate float64
	// DropWithin bounds where a cut falls: after 0 to DropWithin-1 bytes
	// of its direction, log-uniformly (default DefaultDropWithin).
	DropWithin int64
	// StallRate is the share (0 to 1) of connections that stall, at a
	// point drawn as for a cut. DropRate+StallRate is at most 1.
	StallRate float64
	// DelayRate is the share (0 to 1) of forwarded chunks that are held
	// back first.
	DelayRate float64
	// MaxDelay bounds one delay (default DefaultMaxDelay; at most
	// MaxMaxDelay).
	MaxDelay time.Duration
}

// Defaults and bounds of a Config.
const (
	DefaultDropWithin = 1 << 20
	DefaultMaxDelay   = 50 * time.Millisecond
	// MaxMaxDelay keeps delays small: tests built on the proxy stay fast.
	MaxMaxDelay = time.Second
	// chunkSize is the most bytes forwarded at once (one delay each).
	chunkSize = 32 << 10
	// dialTimeout bounds connecting to the target.
	dialTimeout = 5 * time.Second
)

// Direction is which way bytes flow.
type Direction int

// Directions of a connection.
const (
	Up   Direction = iota // client to target
	Down                  // target to client
)

func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Stats counts what a proxy did.
type Stats struct {
	Conns   int64    // connections accepted
	Refused int64    // of those, reset at once (Refuse, or the target down)
	Drops   int64    // connections cut part way through
	DropsBy [2]int64 // cuts by Direction
	Stalls  int64    // connections stalled
	Delays  int64    // chunks held back
	Bytes   [2]int64 // bytes forwarded by Direction
}

// Proxy is a running fault proxy. Its methods are safe for concurrent
// use.
type Proxy struct {
	target string
	cfg    Config
	ln     net.Listener
	done   chan struct{} // closed by Close

	mu          sync.Mutex
	rnd         *rand.Rand
	refuseUntil time.Time
	open        map[*link]struct{}
	closed      bool
	wg          sync.WaitGroup

	conns, refused, drops, stalls, delays atomic.Int64
	dropsBy, bytes                        [2]atomic.Int64
}

// New starts a proxy on 127.0.0.1 (a free port) that forwards to target
// (host:port).
func New(target string, cfg Config) (*Proxy, error) {
	switch {
	case cfg.DropRate < 0 || cfg.DropRate > 1:
		return nil, fmt.Errorf("faultproxy: drop rate %v is not between 0 and 1", cfg.DropRate)
	case cfg.StallRate < 0 || cfg.DropRate+cfg.StallRate > 1:
		return nil, fmt.Errorf("faultproxy: stall rate %v is not between 0 and 1 less the drop rate", cfg.StallRate)
	case cfg.DelayRate < 0 || cfg.DelayRate > 1:
		return nil, fmt.Errorf("faultproxy: delay rate %v is not between 0 and 1", cfg.DelayRate)
	case cfg.DropWithin < 0:
		return nil, fmt.Errorf("faultproxy: negative DropWithin %d", cfg.DropWithin)
	case cfg.MaxDelay < 0 || cfg.MaxDelay > MaxMaxDelay:
		return nil, fmt.Errorf("faultproxy: MaxDelay %v is not between 0 and %v", cfg.MaxDelay, MaxMaxDelay)
	}
	if cfg.DropWithin == 0 {
		cfg.DropWithin = DefaultDropWithin
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{
		target: target,
		cfg:    cfg,
		ln:     ln,
		done:   make(chan struct{}),
		rnd:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6a09e667f3bcc909)),
		open:   map[*link]struct{}{},
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's address (127.0.0.1:PORT): connect there instead of
// to the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stats returns what the proxy did so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Conns:   p.conns.Load(),
		Refused: p.refused.Load(),
		Drops:   p.drops.Load(),
		DropsBy: [2]int64{p.dropsBy[Up].Load(), p.dropsBy[Down].Load()},
		Stalls:  p.stalls.Load(),
		Delays:  p.delays.Load(),
		Bytes:   [2]int64{p.bytes[Up].Load(), p.bytes[Down].Load()},
	}
}

// Refuse resets every new connection for d from now (d ≤ 0: accept them
// again). Open connections go on.
func (p *Proxy) Refuse(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseUntil = time.Now().Add(d)
}

// CutAll resets every open connection now (they count as drops).
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.open))
	for l := range p.open {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.cut(true, func() { p.drops.Add(1) })
	}
}

// Close stops accepting, resets every open connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	links := make([]*link, 0, len(p.open))
	for l := range p.open {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.cut(true, nil)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// Out of file descriptors and the like: wait a little.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.accept(c)
	}
}

// plan is what will happen to one connection.
type plan struct {
	cut   bool // a cut or a stall
	stall bool
	dir   Direction
	at    int64 // bytes of dir forwarded before the cut or stall
	reset bool  // cut with a reset (else a plain close)
	seeds [2]uint64
}

// link is one proxied connection: the client's side and the target's.
type link struct {
	client, server net.Conn // server is nil until dialled
	mu             sync.Mutex
	over           bool
	done           chan struct{}
	// stalled: one direction stalled; from then on only the client's
	// end ends the link (see hold).
	stalled atomic.Bool
}

// cut closes both sides (with a reset: SO_LINGER 0) unless the link is
// over already. If it does, it calls count first (when set), so that a
// client that sees the close finds the fault counted.
func (l *link) cut(reset bool, count func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return
	}
	l.over = true
	if count != nil {
		count()
	}
	close(l.done)
	for _, c := range []net.Conn{l.client, l.server} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0) // best effort: failing, the close is a FIN, not a reset
		}
		_ = c.Close() // the link is over: a failed close changes nothing for it
	}
}

// hold is the end of a pump's source on a stalled link: the client's end
// (Up) ends the link; the target's is kept from the client, whose side
// stays open until it closes it (the other pump sees that) or the proxy
// closes.
func (l *link) hold(dir Direction) {
	if dir == Up {
		l.cut(true, nil)
		return
	}
	<-l.done
}

func (p *Proxy) accept(c net.Conn) {
	p.conns.Add(1)
	p.mu.Lock()
	if p.closed || time.Now().Before(p.refuseUntil) {
		p.mu.Unlock()
		p.refused.Add(1)
		resetConn(c)
		return
	}
	f := p.rnd.Float64()
	pl := plan{
		cut:   f < p.cfg.DropRate+p.cfg.StallRate,
		stall: f >= p.cfg.DropRate,
		dir:   Direction(p.rnd.IntN(2)),
		at:    logUniform(p.rnd, p.cfg.DropWithin),
		reset: p.rnd.IntN(2) == 0,
		seeds: [2]uint64{p.rnd.Uint64(), p.rnd.Uint64()},
	}
	l := &link{client: c, done: make(chan struct{})}
	p.open[l] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.run(l, pl)
}

// logUniform returns a number in [0, n) whose logarithm is about
// uniform: as often below 100 as between 100 and 10000.
func logUniform(rnd *rand.Rand, n int64) int64 {
	v := int64(math.Exp(rnd.Float64()*math.Log(float64(n)+1))) - 1
	return min(max(v, 0), n-1)
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // best effort: failing, the close is a FIN, not a reset
	}
	_ = c.Close() // refused: nothing was sent on it
}

func (p *Proxy) run(l *link, pl plan) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.open, l)
		p.mu.Unlock()
	}()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.Dial("tcp", p.target)
	if err != nil {
		p.refused.Add(1)
		l.cut(true, nil)
		return
	}
	l.mu.Lock()
	if l.over {
		l.mu.Unlock()
		_ = server.Close() // never used: nothing to lose
		return
	}
	l.server = server
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	for _, dir := range []Direction{Up, Down} {
		src, dst := l.client, server
		if dir == Down {
			src, dst = server, l.client
		}
		at := int64(-1)
		if pl.cut && pl.dir == dir {
			at = pl.at
		}
		rnd := rand.New(rand.NewPCG(pl.seeds[dir], uint64(dir)))
		go func() {
			defer wg.Done()
			p.pump(l, dir, src, dst, at, pl, rnd)
		}()
	}
	wg.Wait()
	l.cut(false, nil)
}

// pump forwards src to dst until src ends (then it half-closes dst), a
// side fails, or the planned cut or stall at byte at (at < 0: none).
func (p *Proxy) pump(l *link, dir Direction, src, dst net.Conn, at int64, pl plan, rnd *rand.Rand) {
	buf := make([]byte, chunkSize)
	var n int64
	for {
		m, rerr := src.Read(buf)
		if m > 0 {
			if p.cfg.DelayRate > 0 && rnd.Float64() < p.cfg.DelayRate {
				p.delays.Add(1)
				t := time.NewTimer(time.Duration(rnd.Int64N(int64(p.cfg.MaxDelay) + 1)))
				select {
				case <-t.C:
				case <-l.done:
					t.Stop()
					return
				}
			}
			chunk := buf[:m]
			cutNow := at >= 0 && n+int64(m) > at
			if cutNow {
				chunk = chunk[:at-n]
			}
			w, werr := dst.Write(chunk)
			n += int64(w)
			p.bytes[dir].Add(int64(w))
			if cutNow && werr == nil && pl.stall {
				p.stalls.Add(1)
				l.stalled.Store(true)
				// Swallow what the source sends until it ends; how it
				// ends does not matter to a stall.
				_, _ = io.Copy(io.Discard, src)
				l.hold(dir)
				return
			}
			if cutNow && werr == nil {
				l.cut(pl.reset, func() { p.drops.Add(1); p.dropsBy[dir].Add(1) })
				return
			}
			if werr != nil {
				l.cut(true, nil)
				return
			}
		}
		if rerr != nil {
			if l.stalled.Load() {
				l.hold(dir)
				return
			}
			if errors.Is(rerr, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					// Passes the end on; should it fail, the link ends
					// when the other pump's side does.
					_ = cw.CloseWrite()
				}
				return
			}
			l.cut(true, nil)
			return
		}
	}
}
