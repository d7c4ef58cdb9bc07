package faultnet

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Net is a full mesh of proxies, one in front of each member, that turns partitions between
// named members into rules on the right proxies. Every member must advertise its proxy's
// address to its peers and dial out from its own IP. It is safe for concurrent use.
type Net struct {
	mu      sync.Mutex
	members map[string]member
	closed  bool
}

type member struct {
	ip    string
	proxy *Proxy
}

// NewNet returns an empty mesh.
func NewNet() *Net {
	return &Net{members: make(map[string]member)}
}

// Add registers member name, whose real listener is targetAddr, whose advertised address is
// listenAddr (where its proxy accepts) and whose outgoing connections come from ip. It
// returns the member's proxy.
func (n *Net) Add(name, listenAddr, targetAddr, ip string) (*Proxy, error) {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return nil, fmt.Errorf("add member %s: source ip %q is not an IP address", name, ip)
	}
	// Rules are matched against the remote address's String form, so store that form.
	ip = parsed.String()

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("add member %s: %w", name, ErrClosed)
	}
	if _, ok := n.members[name]; ok {
		return nil, fmt.Errorf("add member %s: %w", name, ErrMemberExists)
	}
	for other, m := range n.members {
		if m.ip == ip {
			return nil, fmt.Errorf("add member %s: ip %s is member %s's: %w", name, ip, other, ErrMemberExists)
		}
	}
	p, err := Listen(listenAddr, targetAddr)
	if err != nil {
		return nil, fmt.Errorf("add member %s: %w", name, err)
	}
	n.members[name] = member{ip: ip, proxy: p}
	return p, nil
}

// Isolate cuts every link to and from name, both ways, with every member added so far.
// Connections from anything that is not a member (a test client) are left alone.
func (n *Net) Isolate(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, err := n.lookup(name)
	if err != nil {
		return fmt.Errorf("isolate: %w", err)
	}
	for other, o := range n.members {
		if other == name {
			continue
		}
		o.proxy.Cut(m.ip)
		m.proxy.Cut(o.ip)
	}
	return nil
}

// CutLink cuts a→b and b→a: neither can dial the other and open connections between them
// are reset.
func (n *Net) CutLink(a, b string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ma, errA := n.lookup(a)
	mb, errB := n.lookup(b)
	if err := errors.Join(errA, errB); err != nil {
		return fmt.Errorf("cut link %s-%s: %w", a, b, err)
	}
	mb.proxy.Cut(ma.ip)
	ma.proxy.Cut(mb.ip)
	return nil
}

// OneWay drops the bytes that from sends to to, whichever side dialed, while to's bytes
// still reach from. Connections stay open, as with a one-way packet loss.
func (n *Net) OneWay(from, to string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	mf, errF := n.lookup(from)
	mt, errT := n.lookup(to)
	if err := errors.Join(errF, errT); err != nil {
		return fmt.Errorf("one-way %s->%s: %w", from, to, err)
	}
	// from dialed to's proxy: from is the dialer, its bytes flow toward the target.
	mt.proxy.Blackhole(mf.ip, ToTarget)
	// to dialed from's proxy: from is the target, its bytes flow back to the dialer.
	mf.proxy.Blackhole(mt.ip, FromTarget)
	return nil
}

// Slow delays every chunk on every link between name and the members added so far by d, in
// both directions, whichever side dialed: a member on a slow network. Heal lifts it.
func (n *Net) Slow(name string, d time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, err := n.lookup(name)
	if err != nil {
		return fmt.Errorf("slow: %w", err)
	}
	for other, o := range n.members {
		if other == name {
			continue
		}
		o.proxy.Delay(m.ip, d)
		m.proxy.Delay(o.ip, d)
	}
	return nil
}

// Heal removes every rule on every proxy.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.members {
		m.proxy.HealAll()
	}
}

// Close closes every proxy. Later calls to Add fail with ErrClosed.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	var errs []error
	for name, m := range n.members {
		if err := m.proxy.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close member %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// lookup returns the member called name. n.mu must be held.
func (n *Net) lookup(name string) (member, error) {
	m, ok := n.members[name]
	if !ok {
		return member{}, fmt.Errorf("%s: %w", name, ErrUnknownMember)
	}
	return m, nil
}
