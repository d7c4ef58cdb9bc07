package mtls

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// trackedConn is the raw connection under a *tls.Conn. Closing the *tls.Conn closes it,
// which drops it from the tracker; the tracker closes it directly to cut a peer off, which
// unblocks any reader at once.
type trackedConn struct {
	net.Conn
	br    *bufio.Reader // nil on dialled conns: only accepted conns are sniffed
	src   *Source
	port  string
	dir   direction
	addr  string
	tls   *tls.Conn
	once  sync.Once
	inSet atomic.Bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		return c.br.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.src.conns.remove(c)
	var err error
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

// tracker holds every live authorised connection of a Source so that a new CRL, CA bundle
// or member set can be enforced on connections raft keeps open for hours.
type tracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	epoch atomic.Uint64 // bumped after every swap and SetMembers
}

func newTracker() *tracker { return &tracker{conns: map[*trackedConn]struct{}{}} }

func (t *tracker) remove(c *trackedConn) {
	if c.inSet.Load() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}
}

func (t *tracker) snapshot() []*trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		out = append(out, c)
	}
	return out
}

// register adds c, authorised at epoch seen. If the policy changed during the handshake,
// c is checked again now: either the re-check after the change saw c, or this one runs.
func (s *Source) register(c *trackedConn, seen uint64) bool {
	c.inSet.Store(true)
	s.conns.mu.Lock()
	s.conns.conns[c] = struct{}{}
	s.conns.mu.Unlock()
	if s.conns.epoch.Load() != seen {
		return s.recheck(c)
	}
	return true
}

// recheckAll closes every live connection whose peer the current policy refuses.
func (s *Source) recheckAll() {
	s.conns.epoch.Add(1)
	for _, c := range s.conns.snapshot() {
		s.recheck(c)
	}
}

func (s *Source) recheck(c *trackedConn) bool {
	m := s.mat.Load()
	err := s.authorise(m, c.tls.ConnectionState().PeerCertificates, nil, c.dir, c.addr)
	if err == nil {
		return true
	}
	s.refused(c.port, c.addr, err, "closing live connection: the peer fails the new policy")
	c.Close()
	return false
}
