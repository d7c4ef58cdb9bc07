// Package faultnet is a TCP proxy for tests that cuts, delays and blackholes links between
// cluster members.
//
// Members run on 127.0.0.x loopback addresses and each dials out from its own IP, so a Proxy
// in front of member B tells the dialing member apart by the connection's remote IP. Rules
// are keyed by that IP ("127.0.0.2"), or by AnySource for every dialer. Net wires one Proxy
// per member into a full mesh and turns partitions ("isolate a", "a cannot reach b") into
// per-proxy rules.
//
// Rules act on live connections: Cut closes them, Blackhole and Delay apply to the next chunk
// read. Nothing here is meant for production use.
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds the dial to the target, so that a target that never answers cannot hold
// an accepted connection (and Close) for the kernel's SYN retry budget of minutes.
const dialTimeout = 10 * time.Second

// Proxy accepts connections on one address and forwards each to a target, applying the
// fault rules of the connection's source IP. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	// ctx is cancelled by Close so that dials to the target in progress give up at once.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	rules  map[string]rule
	links  map[*link]struct{}
	closed bool

	accepted, refused, failed atomic.Int64
	forwarded, dropped        atomic.Int64
}

// Stats counts what a Proxy has done since Listen.
type Stats struct {
	Accepted  int64 // connections forwarded to the target
	Refused   int64 // connections closed at once because their source was cut
	Failed    int64 // connections closed because the target could not be dialled
	Active    int   // connections open now
	Forwarded int64 // bytes written to either side
	Dropped   int64 // bytes discarded by a blackhole
}

// Listen starts a proxy that accepts on listenAddr and forwards each connection to
// targetAddr. Pass port 0 to let the kernel pick one and read it back with Addr.
func Listen(listenAddr, targetAddr string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s for proxy to %s: %w", listenAddr, targetAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:     ln,
		target: targetAddr,
		ctx:    ctx,
		cancel: cancel,
		rules:  make(map[string]rule),
		links:  make(map[*link]struct{}),
	}
	p.wg.Go(p.serve)
	return p, nil
}

// Addr returns the address the proxy accepts on, with the port the kernel picked.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, resets every proxied connection and waits for all the proxy's
// goroutines to end. Calling it again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.matching(AnySource)
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, l := range links {
		l.close(true)
	}
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("close proxy %s: %w", p.Addr(), err)
	}
	return nil
}

// Cut refuses new connections from src and resets the open ones, so both directions die at
// once, as when a member's network goes away. src is an IP or AnySource.
func (p *Proxy) Cut(src string) {
	p.mu.Lock()
	r := p.rules[src]
	r.cut = true
	p.rules[src] = r
	links := p.matching(src)
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
}

// Blackhole keeps connections from src open but silently discards the bytes that flow in
// dir, on open connections and on new ones. Calls accumulate: blackholing ToTarget and then
// FromTarget drops both.
func (p *Proxy) Blackhole(src string, dir Direction) {
	p.update(src, func(r *rule) { r.drop |= dir & Both })
}

// Delay holds every chunk from or to src for d before passing it on. Chunks keep their order
// and are delayed in parallel, so a stream gains latency d but keeps its throughput. A d of
// zero removes the delay.
func (p *Proxy) Delay(src string, d time.Duration) {
	p.update(src, func(r *rule) { r.delay = max(d, 0) })
}

// Heal removes every rule set for src. It does not lift rules set for AnySource.
func (p *Proxy) Heal(src string) {
	p.mu.Lock()
	delete(p.rules, src)
	p.mu.Unlock()
}

// HealAll removes every rule.
func (p *Proxy) HealAll() {
	p.mu.Lock()
	clear(p.rules)
	p.mu.Unlock()
}

// Stats returns a snapshot of the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.links)
	p.mu.Unlock()
	return Stats{
		Accepted:  p.accepted.Load(),
		Refused:   p.refused.Load(),
		Failed:    p.failed.Load(),
		Active:    active,
		Forwarded: p.forwarded.Load(),
		Dropped:   p.dropped.Load(),
	}
}

func (p *Proxy) update(src string, f func(*rule)) {
	p.mu.Lock()
	r := p.rules[src]
	f(&r)
	p.rules[src] = r
	p.mu.Unlock()
}

// rule returns the rule in force for src: its own merged with the AnySource one.
func (p *Proxy) rule(src string) rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ruleLocked(src)
}

func (p *Proxy) ruleLocked(src string) rule {
	return p.rules[src].merge(p.rules[AnySource])
}

// matching returns the open links from src, or all of them for AnySource. p.mu must be held.
func (p *Proxy) matching(src string) []*link {
	var out []*link
	for l := range p.links {
		if src == AnySource || l.src == src {
			out = append(out, l)
		}
	}
	return out
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Accept fails transiently (EMFILE under a heavy test); a proxy that quit here
			// would look like a partition nobody asked for, so back off and keep going.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.wg.Go(func() { p.handle(c) })
	}
}

// handle dials the target for one accepted connection and forwards until both directions
// end or the link is reset.
func (p *Proxy) handle(client net.Conn) {
	src := sourceIP(client)
	// Checking before the dial spares the target a connection it would see opened and
	// reset at once; register checks again because a Cut may land during the dial.
	if p.rule(src).cut {
		p.refused.Add(1)
		reset(client)
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.failed.Add(1)
		reset(client)
		return
	}
	l := newLink(src, client, server)
	if !p.register(l) {
		l.close(true)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(l, ToTarget) })
	wg.Go(func() { p.pipe(l, FromTarget) })
	wg.Wait()
	l.close(false)
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// register adds l to the open links unless the proxy is closed or l's source is cut. Both
// are checked under p.mu, the lock Cut and Close take to collect links, so no link can slip
// past either.
func (p *Proxy) register(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.ruleLocked(l.src).cut {
		p.refused.Add(1)
		return false
	}
	p.links[l] = struct{}{}
	p.accepted.Add(1)
	return true
}

// sourceIP returns the IP of the dialer, the key its rules are stored under.
func sourceIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
