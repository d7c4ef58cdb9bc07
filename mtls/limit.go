package mtls

import (
	"net"
	"sync"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Scopes of a handshake cap, as the metric labels them.
const (
	scopeGlobal = "global" // Config.MaxHandshakes: the listener's handshakes in flight
	scopeSource = "source" // Config.MaxHandshakesPerIP: those from one source IP
)

// handshakeSlots counts a listener's connections that are still in their handshake, in
// total and per source IP. A slot is taken when the connection is accepted and given back
// when the handshake ends, however it ends: the handshake timeout bounds how long a silent
// peer holds one.
type handshakeSlots struct {
	max, maxPerIP int
	mu            sync.Mutex
	total         int
	perIP         map[string]int
}

func newHandshakeSlots(max, maxPerIP int) *handshakeSlots {
	return &handshakeSlots{max: max, maxPerIP: maxPerIP, perIP: map[string]int{}}
}

// take reserves a slot for ip, or returns the scope of the cap that is full.
func (h *handshakeSlots) take(ip string) (scope string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.total >= h.max:
		return scopeGlobal, false
	case h.perIP[ip] >= h.maxPerIP:
		return scopeSource, false
	}
	h.total++
	h.perIP[ip]++
	return "", true
}

func (h *handshakeSlots) give(ip string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.perIP[ip]--; h.perIP[ip] <= 0 {
		delete(h.perIP, ip)
	}
}

// admit takes a handshake slot for c, or closes c at once, before any TLS work, and
// counts and logs (rate-limited) which cap it hit.
func (l *tlsListener) admit(c net.Conn) (ip string, ok bool) {
	ip = hostOf(c.RemoteAddr().String())
	scope, ok := l.slots.take(ip)
	if ok {
		return ip, true
	}
	c.Close()
	s := l.src
	s.cfg.Metrics.handshakeLimited(l.port, scope)
	if s.logDue(ip, l.port+"|limit|"+scope) {
		limit := s.cfg.MaxHandshakesPerIP
		if scope == scopeGlobal {
			limit = s.cfg.MaxHandshakes
		}
		s.log.Warn("closed a connection before its handshake: too many handshakes in flight; a client should reuse its connections, or raise the cap",
			"peer", c.RemoteAddr().String(), "scope", scope, "limit", limit,
			"reason", int(reason.HandshakeLimit), "reason_name", reason.HandshakeLimit.Name())
	}
	return "", false
}
