package mtls

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
)

// BenchmarkHandshake measures member-port handshakes (mutual TLS 1.3, policy dn, ack byte)
// over loopback TCP, full and resumed, per key type. (net.Pipe would deadlock: both ends
// of a TLS 1.3 resumption write at once, and a pipe has no buffer.)
func BenchmarkHandshake(b *testing.B) {
	ca := pkitest.NewCA(b, "replication")
	for _, kt := range []pkitest.KeyType{pkitest.ECDSA, pkitest.Ed25519, pkitest.RSA} {
		a := ca.Issue(pkitest.Spec{CN: "a", Key: kt})
		d := ca.Issue(pkitest.Spec{CN: "d", Key: kt})
		members := map[string]string{"peer": dnOf(a.Cert), "other": dnOf(d.Cert)}
		mod := func(c *Config) { c.Policy, c.Members = PolicyDN, members }
		acc := sourceFor(b, PortMember, a, ca.CertPath, "", nil, mod)
		dial := sourceFor(b, PortMember, d, ca.CertPath, "", nil, mod)
		for _, mode := range []string{"full", "resumed"} {
			b.Run(string(kt)+"/"+mode, func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				cfg := dial.dialConfig(dial.mat.Load(), "peer", nil)
				cfg.ServerName = "peer" // the session cache key: each connection has a new port
				if mode == "full" {
					cfg.ClientSessionCache = nil
				} else {
					cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
					handshakeOnce(b, ln, acc, cfg) // fill the cache
				}
				b.ReportAllocs()
				for b.Loop() {
					if resumed := handshakeOnce(b, ln, acc, cfg); resumed != (mode == "resumed") {
						b.Fatalf("resumed = %v in mode %s", resumed, mode)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			})
		}
	}
}

func handshakeOnce(b *testing.B, ln net.Listener, acc *Source, cfg *tls.Config) bool {
	cc, sc := tcpPair(b, ln)
	defer cc.Close()
	errc := make(chan error, 1)
	go func() {
		defer sc.Close()
		srv := tls.Server(sc, acc.listen)
		if err := srv.Handshake(); err != nil {
			errc <- err
			return
		}
		_, err := srv.Write([]byte{ackByte})
		errc <- err
	}()
	cli := tls.Client(cc, cfg)
	if err := cli.Handshake(); err != nil {
		b.Fatalf("client handshake: %v", err)
	}
	if _, err := io.ReadFull(cli, make([]byte, 1)); err != nil {
		b.Fatalf("ack: %v", err)
	}
	if err := <-errc; err != nil {
		b.Fatalf("server: %v", err)
	}
	return cli.ConnectionState().DidResume
}

func tcpPair(b *testing.B, ln net.Listener) (net.Conn, net.Conn) {
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	return cc, sc
}
