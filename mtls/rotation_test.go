package mtls

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// node is a member whose credential files live at fixed paths that the test rewrites.
type node struct {
	src       *Source
	cert, key string
}

func newNode(t *testing.T, dir, name string, l *pkitest.Leaf, bundle, crl string) *node {
	n := &node{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+"-key.pem")}
	n.install(t, l)
	n.src = sourceFor(t, PortMember, &pkitest.Leaf{CertPath: n.cert, KeyPath: n.key}, bundle, crl, nil)
	return n
}

// install replaces the node's files: the key first, then the certificate; the reload that
// follows sees both.
func (n *node) install(t *testing.T, l *pkitest.Leaf) {
	pkitest.WriteFile(t, n.key, l.KeyPEM)
	pkitest.WriteFile(t, n.cert, l.CertPEM)
}

func reloadAll(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		if err := n.src.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
}

// echoServer answers every byte on every accepted connection.
func echoServer(t *testing.T, src *Source) string {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := src.Listen(inner)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn) error {
	if _, err := c.Write([]byte{'r'}); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}

func TestSource_RotationUnderLoad(t *testing.T) {
	ca1, ca2 := pkitest.NewCA(t, "replication-2025"), pkitest.NewCA(t, "replication-2026")
	dir := t.TempDir()
	bundle := pkitest.Bundle(t, filepath.Join(dir, "ca.pem"), ca1)
	crl := pkitest.WriteFile(t, filepath.Join(dir, "crl.pem"), ca1.CRLPEM())
	server := newNode(t, dir, "server", ca1.Member("server"), bundle, crl)
	addr := echoServer(t, server.src)
	peers := []*node{
		newNode(t, dir, "a", ca1.Member("a"), bundle, crl),
		newNode(t, dir, "b", ca1.Member("b"), bundle, crl),
		newNode(t, dir, "c", ca1.Member("c"), bundle, crl),
	}
	victimLeaf := ca1.Member("victim")
	victim := newNode(t, dir, "victim", victimLeaf, bundle, crl)
	victimConn, err := victim.src.Dial(t.Context(), addr)
	if err != nil {
		t.Fatalf("victim Dial: %v", err)
	}
	defer victimConn.Close()

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		p := peers[i%len(peers)]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := p.src.Dial(t.Context(), addr)
				if err == nil {
					err = roundTrip(c)
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	// progress waits until the loops have completed more handshakes, so that every step
	// happens under a stream of new handshakes.
	progress := func() {
		t.Helper()
		for target := ok.Load() + 30; ok.Load() < target; {
			if failed.Load() > 0 {
				t.Fatalf("a valid peer failed: %v", firstErr.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	all := append([]*node{server, victim}, peers...)

	progress()
	pkitest.Bundle(t, bundle, ca1, ca2) // 1. trust the old and the new CA
	reloadAll(t, all...)
	progress()
	server.install(t, ca2.Member("server")) // 2. the server moves to the new CA
	reloadAll(t, server)
	progress()
	peers[0].install(t, ca2.Member("a")) // 3. so does a peer
	reloadAll(t, peers[0])
	progress()
	ca1.Revoke(victimLeaf) // 4. a peer is revoked while connected
	pkitest.WriteFile(t, crl, append(ca1.CRLPEM(), ca2.CRLPEM()...))
	reloadAll(t, all...)
	progress()

	_ = victimConn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := roundTrip(victimConn); err == nil {
		t.Error("the revoked peer's live connection still works")
	}
	_, err = victim.src.Dial(t.Context(), addr)
	if he, isHE := errors.AsType[*HandshakeError](err); !isHE || he.Reason != reason.Revoked {
		t.Errorf("revoked peer's new Dial: %v, want a HandshakeError with reason Revoked", err)
	}

	peers[1].install(t, ca2.Member("b")) // 5. the rest move to the new CA
	peers[2].install(t, ca2.Member("c"))
	reloadAll(t, peers[1], peers[2])
	progress()
	pkitest.Bundle(t, bundle, ca2) // 6. the old CA leaves the bundle
	pkitest.WriteFile(t, crl, ca2.CRLPEM())
	reloadAll(t, server, peers[0], peers[1], peers[2])
	progress()
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d handshakes of valid peers failed during the rotation; first: %v", n, firstErr.Load())
	}
	t.Logf("%d handshakes during the rotation", ok.Load())
}
