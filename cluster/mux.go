package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Network is the member channel: Accept returns conns already authenticated and
// authorised, and Dial returns an authorised conn to a member address. The Cluster owns it
// from New on and closes it in Close.
type Network interface {
	net.Listener
	Dial(ctx context.Context, addr string) (net.Conn, error)
	// PeerDN is the canonical subject DN of the certificate the peer of an accepted conn
	// authenticated with.
	PeerDN(conn net.Conn) (string, error)
}

// Authoriser receives the member address → canonical DN map on every membership change, so
// that the member channel accepts exactly the current members.
type Authoriser interface {
	SetMembers(map[string]string)
}

// Header bytes the dialer writes once after the channel's handshake.
const (
	headerRaft byte = 1
	headerRPC  byte = 2
)

// headerTimeout bounds the wait for a new conn's header byte.
const headerTimeout = 10 * time.Second

// mux splits the member channel into raft conns and member RPC conns and tracks every conn
// it hands out, because raft parks inbound conns in deadline-less reads that only closing
// them ends.
type mux struct {
	nw    Network
	addr  string
	log   *slog.Logger
	raftC chan net.Conn
	rpc   func(net.Conn)
	// claim checks the sender's identity in each raft request on an accepted conn against
	// the DN its certificate proved (raftGate).
	claim func(dn string, id, addr []byte) error
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newMux(nw Network, advertise string, log *slog.Logger, rpc func(net.Conn), claim func(dn string, id, addr []byte) error) *mux {
	return &mux{nw: nw, addr: advertise, log: log, raftC: make(chan net.Conn), rpc: rpc, claim: claim,
		done: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
}

func (m *mux) serve() {
	m.wg.Go(func() {
		backoff := 5 * time.Millisecond
		for {
			conn, err := m.nw.Accept()
			if err != nil {
				select {
				case <-m.done:
					return
				case <-time.After(backoff):
					backoff = min(2*backoff, time.Second)
					m.log.Warn("accept member conn", "err", err)
					continue
				}
			}
			backoff = 5 * time.Millisecond
			m.wg.Go(func() { m.route(conn) })
		}
	})
}

// route reads the header byte under a deadline and hands the conn to raft or the RPC server.
func (m *mux) route(conn net.Conn) {
	tc, ok := m.track(conn, "")
	if !ok {
		return
	}
	var hdr [1]byte
	_ = tc.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := io.ReadFull(tc, hdr[:]); err != nil {
		tc.Close()
		return
	}
	_ = tc.SetReadDeadline(time.Time{})
	switch hdr[0] {
	case headerRaft:
		dn, err := m.nw.PeerDN(conn)
		if err != nil {
			m.log.Warn("raft conn without a known peer; closing", "peer", tc.RemoteAddr().String(), "err", err)
			tc.Close()
			return
		}
		gated := newRaftGate(tc, func(id, addr []byte) error { return m.claim(dn, id, addr) })
		select {
		case m.raftC <- gated:
		case <-m.done:
			tc.Close()
		}
	case headerRPC:
		m.rpc(tc)
	default:
		m.log.Warn("unknown member channel header; closing", "peer", tc.RemoteAddr().String(), "header", hdr[0])
		tc.Close()
	}
}

// dial opens a member channel conn to addr and announces what it carries.
func (m *mux) dial(ctx context.Context, addr string, header byte) (net.Conn, error) {
	conn, err := m.nw.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial member %s: %w", addr, err)
	}
	tc, ok := m.track(conn, addr)
	if !ok {
		return nil, ErrShutdown
	}
	if d, ok := ctx.Deadline(); ok {
		_ = tc.SetWriteDeadline(d)
	}
	if _, err := tc.Write([]byte{header}); err != nil {
		tc.Close()
		return nil, fmt.Errorf("write header to member %s: %w", addr, err)
	}
	_ = tc.SetWriteDeadline(time.Time{})
	return tc, nil
}

func (m *mux) track(c net.Conn, dialled string) (*trackedConn, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		c.Close()
		return nil, false
	}
	tc := &trackedConn{Conn: c, m: m, dialled: dialled}
	m.conns[tc] = struct{}{}
	return tc, true
}

func (m *mux) forget(tc *trackedConn) {
	m.mu.Lock()
	delete(m.conns, tc)
	m.mu.Unlock()
}

// close stops accepting, closes the network and every conn, and waits for the routers.
func (m *mux) close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	conns := make([]*trackedConn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	err := m.nw.Close()
	for _, c := range conns {
		c.Close()
	}
	m.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close member listener: %w", err)
	}
	return nil
}

// closeTo closes every conn this member dialled to addr.
func (m *mux) closeTo(addr string) {
	m.mu.Lock()
	var conns []*trackedConn
	for c := range m.conns {
		if c.dialled == addr {
			conns = append(conns, c)
		}
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	m       *mux
	dialled string // member address this side dialled; empty on accepted conns
	once    sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.m.forget(c) })
	return c.Conn.Close()
}

// streamLayer adapts the mux to raft.StreamLayer.
type streamLayer struct {
	m      *mux
	closed chan struct{}
	once   sync.Once
}

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftC:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	case <-s.m.done:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// Addr is the advertised address: raft takes its own server address from it.
func (s *streamLayer) Addr() net.Addr { return memberAddr(s.m.addr) }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.m.dial(ctx, string(address), headerRaft)
}

type memberAddr string

func (a memberAddr) Network() string { return "member" }
func (a memberAddr) String() string  { return string(a) }
