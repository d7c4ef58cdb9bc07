package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
)

// echo writes one byte on c and expects it back from the other end.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	_ = a.SetDeadline(time.Now().Add(20 * time.Second))
	_ = b.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = a.Write([]byte("k")) }()
	got := make([]byte, 1)
	if _, err := io.ReadFull(b, got); err != nil || got[0] != 'k' {
		t.Fatalf("exchange: got %q, %v", got, err)
	}
}

func TestHandshake_Good(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	clientEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	rsaMember := rca.Issue(pkitest.Spec{CN: "rsa-acceptor", Key: pkitest.RSA})
	cases := []struct {
		name             string
		acceptor, dialer *pkitest.Leaf
		policy           Policy
		minVersion       uint16
	}{
		{"ecdsa", rca.Member("a"), rca.Member("b"), PolicyCA, 0},
		{"ed25519", rca.Issue(pkitest.Spec{CN: "a", Key: pkitest.Ed25519}), rca.Issue(pkitest.Spec{CN: "b", Key: pkitest.Ed25519}), PolicyCA, 0},
		{"rsa", rsaMember, rca.Member("b"), PolicyCA, 0},
		{"no extended key usage", rca.Issue(pkitest.Spec{CN: "a", EKU: []x509.ExtKeyUsage{}}), rca.Issue(pkitest.Spec{CN: "b", EKU: []x509.ExtKeyUsage{}}), PolicyCA, 0},
		{"policy dn", rca.Member("a"), rca.Member("b"), PolicyDN, 0},
		{"tls 1.2 allowed (1.3 negotiated), rsa", rsaMember, rca.Member("b"), PolicyDN, tls.VersionTLS12},
	}
	for _, tc := range cases {
		t.Run("member/"+tc.name, func(t *testing.T) {
			var acceptAddr string
			members := func() map[string]string {
				return map[string]string{acceptAddr: dnOf(tc.acceptor.Cert), "127.0.0.9:1": dnOf(tc.dialer.Cert)}
			}
			mod := func(c *Config) { c.Policy, c.MinVersion = tc.policy, tc.minVersion }
			acc := sourceFor(t, PortMember, tc.acceptor, rca.CertPath, "", nil, mod)
			addr, accepted := listen(t, acc.Listen)
			acceptAddr = addr
			acc.SetMembers(members())
			dial := sourceFor(t, PortMember, tc.dialer, rca.CertPath, "", nil, mod)
			dial.SetMembers(members())
			conn, err := dial.Dial(t.Context(), addr)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			in := <-accepted
			exchange(t, conn, in)
			exchange(t, in, conn)
			if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != ALPNMember {
				t.Errorf("ALPN = %q, want %q", p, ALPNMember)
			}
		})
	}
	t.Run("member/tls 1.2 negotiated when allowed", func(t *testing.T) {
		acc := sourceFor(t, PortMember, rca.Member("a"), rca.CertPath, "", nil, func(c *Config) { c.MinVersion = tls.VersionTLS12 })
		addr, _ := listen(t, acc.Listen)
		err := rawDial(t, addr, rca.Member("b"), func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
		if err != nil {
			t.Fatalf("TLS 1.2 with an AEAD suite refused: %v", err)
		}
	})
	clientCases := []struct {
		name   string
		client *pkitest.Leaf
	}{
		{"ecdsa", cca.Client("alice")},
		{"ed25519", cca.Issue(pkitest.Spec{CN: "bob", Key: pkitest.Ed25519, EKU: clientEKU})},
		{"rsa", cca.Issue(pkitest.Spec{CN: "carol", Key: pkitest.RSA, EKU: clientEKU})},
		{"no extensions", cca.Issue(pkitest.Spec{CN: "dave", NoExtensions: true})},
	}
	for _, tc := range clientCases {
		t.Run("client/"+tc.name, func(t *testing.T) {
			srv := sourceFor(t, PortClient, rca.Member("a"), cca.CertPath, "", nil)
			addr, accepted := listen(t, srv.HTTPSListener)
			cli := sourceFor(t, PortClient, tc.client, rca.CertPath, "", nil)
			conn, err := tls.Dial("tcp", addr, cli.ClientTLSConfig())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			in := <-accepted
			exchange(t, conn, in)
			if got := in.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; got != tc.client.Cert.Subject.CommonName {
				t.Errorf("server sees client %q", got)
			}
		})
	}
}
