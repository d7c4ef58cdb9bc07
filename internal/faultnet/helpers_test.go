package faultnet_test

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/faultnet"
)

// ioTimeout bounds every blocking read and dial in these tests so that a bug fails the test
// instead of hanging it. Tests never assert that anything finishes within it.
const ioTimeout = 10 * time.Second

// target stands in for a member's real listener and hands each accepted connection to the
// test.
type target struct {
	ln    net.Listener
	conns chan net.Conn
	wg    sync.WaitGroup
	once  sync.Once
}

func startTarget(tb testing.TB, ip string) *target {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatalf("listen on %s: %v", ip, err)
	}
	tg := &target{ln: ln, conns: make(chan net.Conn, 64)}
	tg.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.conns <- c
		}
	})
	tb.Cleanup(tg.close)
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// close stops accepting and closes every connection the test did not take.
func (tg *target) close() {
	tg.once.Do(func() {
		_ = tg.ln.Close()
		tg.wg.Wait()
		close(tg.conns)
		for c := range tg.conns {
			_ = c.Close()
		}
	})
}

// next returns the next connection the target accepted.
func (tg *target) next(tb testing.TB) net.Conn {
	tb.Helper()
	select {
	case c := <-tg.conns:
		tb.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(ioTimeout):
		tb.Fatalf("target %s accepted no connection", tg.addr())
		return nil
	}
}

// idle fails the test if the target has a connection waiting.
func (tg *target) idle(tb testing.TB) {
	tb.Helper()
	select {
	case c := <-tg.conns:
		_ = c.Close()
		tb.Fatalf("target %s got a connection from %s", tg.addr(), c.RemoteAddr())
	default:
	}
}

func listen(tb testing.TB, targetAddr string) *faultnet.Proxy {
	tb.Helper()
	p, err := faultnet.Listen("127.0.0.1:0", targetAddr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
	})
	return p
}

// dialFrom connects to addr from ip, as a member dialing out from its own address does.
func dialFrom(tb testing.TB, ip, addr string) (net.Conn, error) {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: ioTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c, nil
}

func mustDial(tb testing.TB, ip, addr string) net.Conn {
	tb.Helper()
	c, err := dialFrom(tb, ip, addr)
	if err != nil {
		tb.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	return c
}

// connect dials the proxy from ip and returns both ends: the dialer's and the target's.
func connect(tb testing.TB, ip string, p *faultnet.Proxy, tg *target) (client, server net.Conn) {
	tb.Helper()
	client = mustDial(tb, ip, p.Addr())
	return client, tg.next(tb)
}

func write(tb testing.TB, c net.Conn, s string) {
	tb.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.WriteString(c, s); err != nil {
		tb.Fatalf("write %q: %v", s, err)
	}
}

func readN(tb testing.TB, c net.Conn, n int) []byte {
	tb.Helper()
	if err := c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		tb.Fatalf("read %d bytes: %v", n, err)
	}
	return buf
}

func expectRead(tb testing.TB, c net.Conn, want string) {
	tb.Helper()
	if got := string(readN(tb, c, len(want))); got != want {
		tb.Fatalf("read %q, want %q", got, want)
	}
}

// ping sends a message each way over a proxied connection.
func ping(tb testing.TB, client, server net.Conn) {
	tb.Helper()
	write(tb, client, "ping")
	expectRead(tb, server, "ping")
	write(tb, server, "pong")
	expectRead(tb, client, "pong")
}

// expectDead fails unless reading c ends in an error other than our own deadline: the peer
// closed or reset it.
func expectDead(tb testing.TB, c net.Conn) {
	tb.Helper()
	if err := c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err == nil {
			if n > 0 {
				tb.Fatalf("read %q from a connection that should be dead", buf[:n])
			}
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			tb.Fatal("connection still open: read timed out instead of failing")
		}
		return
	}
}

// expectRefused fails unless a connection from ip to addr is refused or dies at once.
func expectRefused(tb testing.TB, ip, addr string) {
	tb.Helper()
	c, err := dialFrom(tb, ip, addr)
	if err != nil {
		return
	}
	expectDead(tb, c)
}

// waitFor polls cond until it holds, for at most ioTimeout.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
