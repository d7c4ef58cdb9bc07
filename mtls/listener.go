package mtls

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// ackByte is what the acceptor writes after authorising a member: with TLS 1.3 a refused
// client certificate only shows on the dialer's first read, so the dialer waits for it.
const ackByte = 0x01

// tlsListener hands out connections that are handshaken and authorised. Accept never
// returns an error for one connection (raft backs off up to a second after any error); it
// returns only the final error once the listener is closed.
type tlsListener struct {
	inner  net.Listener
	src    *Source
	port   string
	slots  *handshakeSlots
	handle func(l *tlsListener, c net.Conn, done func())
	out    chan net.Conn
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	mu     sync.Mutex
	err    error
}

func (s *Source) newListener(ln net.Listener, port string, handle func(*tlsListener, net.Conn, func())) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{inner: ln, src: s, port: port, handle: handle, out: make(chan net.Conn),
		done: make(chan struct{}), ctx: ctx, cancel: cancel}
	l.slots = newHandshakeSlots(s.cfg.MaxHandshakes, s.cfg.MaxHandshakesPerIP)
	go l.loop()
	return l
}

// Listen wraps ln as the member port: Accept returns only *tls.Conn values whose peer is
// an authorised member and which have already received the ack byte.
func (s *Source) Listen(ln net.Listener) net.Listener {
	return s.newListener(ln, "member", (*tlsListener).serveMember)
}

// loop accepts until the inner listener is closed. Other errors (out of file descriptors,
// say) pass: it backs off and tries again, as net/http does, instead of going deaf.
func (l *tlsListener) loop() {
	backoff := time.Duration(0)
	for {
		c, err := l.inner.Accept()
		if err == nil {
			backoff = 0
			if ip, ok := l.admit(c); ok {
				go l.handle(l, c, func() { l.slots.give(ip) })
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			l.fail(err)
			return
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		l.src.log.Error("accept on a TLS port failed; retrying", "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-l.done:
			return
		}
	}
}

func (l *tlsListener) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
	l.once.Do(func() { close(l.done); l.cancel() })
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.out:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

func (l *tlsListener) Close() error {
	l.fail(ErrClosed)
	return l.inner.Close()
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

func (l *tlsListener) deliver(c net.Conn) {
	select {
	case l.out <- c:
	case <-l.done:
		c.Close()
	}
}

// handshake sniffs and handshakes raw under the handshake deadline. It returns the tracked
// connection and the policy epoch seen before the handshake, or nil if the peer was refused.
// It calls done, which gives back the handshake slot, when the handshake is over.
func (l *tlsListener) handshake(raw net.Conn, done func()) (*trackedConn, uint64) {
	defer done()
	s := l.src
	seen := s.conns.epoch.Load()
	tc := &trackedConn{Conn: raw, br: bufio.NewReaderSize(raw, 64), src: s, port: l.port,
		dir: accepting, addr: raw.RemoteAddr().String()}
	deadline := time.Now().Add(s.cfg.HandshakeTimeout)
	_ = raw.SetDeadline(deadline)
	first, err := tc.br.Peek(1)
	if err != nil {
		if isTimeout(err) {
			s.refused(l.port, tc.addr, err, "peer connected but sent nothing")
		} // else it hung up without a word: a port check, not a refusal
		raw.Close()
		return nil, 0
	}
	if first[0] != recordTypeHandshake {
		l.plaintext(tc)
		return nil, 0
	}
	conn := tls.Server(tc, s.listen)
	tc.tls = conn
	ctx, cancel := context.WithDeadline(l.ctx, deadline)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		s.refused(l.port, tc.addr, err, "refused connection")
		raw.Close()
		return nil, 0
	}
	return tc, seen
}

func (l *tlsListener) serveMember(raw net.Conn, done func()) {
	tc, seen := l.handshake(raw, done)
	if tc == nil {
		return
	}
	if _, err := tc.tls.Write([]byte{ackByte}); err != nil {
		raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{}) // raft's inbound side sets none; idle heartbeats must live
	if !l.src.register(tc, seen) {
		return
	}
	l.deliver(tc.tls)
}

func (l *tlsListener) plaintext(tc *trackedConn) {
	s := l.src
	s.cfg.Metrics.plaintextAttempt(l.port)
	peek, _ := tc.br.Peek(min(tc.br.Buffered(), 16))
	if l.port == "client" && sniff(peek) == kindHTTP {
		answerPlaintext(tc)
	}
	tc.Conn.Close()
	if !s.logDue(hostOf(tc.addr), fmt.Sprintf("%s|%d", l.port, reason.Plaintext)) {
		return // counted above; a scanner or a misconfigured peer in a loop logs once per logEvery
	}
	s.log.Warn("dropped plaintext on a TLS port: the peer does not speak TLS; enable TLS on it",
		"peer", tc.addr, "first_bytes", string(peek), "reason", int(reason.Plaintext))
}
