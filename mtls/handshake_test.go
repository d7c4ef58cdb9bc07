package mtls

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// world is the PKI of the handshake tables: a replication CA, a client CA and a stranger.
type world struct {
	rca, cca, other *pkitest.CA
	member          *pkitest.Leaf // a good member certificate (the side that is not under test)
	client          *pkitest.Leaf // a good client certificate
}

func newWorld(t *testing.T) *world {
	w := &world{rca: pkitest.NewCA(t, "replication"), cca: pkitest.NewCA(t, "clients"), other: pkitest.NewCA(t, "stranger")}
	w.member = w.rca.Member("good-member")
	w.client = w.cca.Client("good-client")
	return w
}

// badCase is one deliberately bad credential or peer. bad says whose side is wrong; the
// other side must detect it with reason want, and the bad side must get an error too.
type badCase struct {
	name    string
	port    string // "member" or "client"
	bad     string // "dialer" or "acceptor"
	want    reason.Code
	leaf    func(w *world) *pkitest.Leaf // the bad side's certificate; nil func: the good one
	revoke  bool                         // the detecting side's CRL lists the bad certificate
	noCert  bool                         // the bad side presents no certificate
	dn      bool                         // policy dn on the detecting side
	members func(w *world, addr string) map[string]string
	raw     func(*tls.Config) // tweaks the bad side's crypto/tls config
	src     func(*Config)     // tweaks the detecting side's Source config
	text    string            // the bad side speaks this plaintext instead of TLS
	answer  string            // plaintext: the answer must contain this
}

func TestHandshake_Refusals(t *testing.T) {
	w := newWorld(t)
	dnOfLeaf := func(l *pkitest.Leaf) string { return dnOf(l.Cert) }
	cases := []badCase{
		// Member port: the dialer's certificate is bad, the acceptor detects it.
		{name: "member/dialer/unknown CA", port: "member", bad: "dialer", want: reason.UnknownCA, leaf: func(w *world) *pkitest.Leaf { return w.other.Member("m") }},
		{name: "member/dialer/client CA certificate", port: "member", bad: "dialer", want: reason.UnknownCA, leaf: func(w *world) *pkitest.Leaf { return w.cca.Client("alice") }},
		{name: "member/dialer/self-signed", port: "member", bad: "dialer", want: reason.UnknownCA, leaf: func(*world) *pkitest.Leaf { return pkitest.SelfSigned(t, "lone") }},
		{name: "member/dialer/ed25519 from unknown CA", port: "member", bad: "dialer", want: reason.UnknownCA, leaf: func(w *world) *pkitest.Leaf { return w.other.Issue(pkitest.Spec{CN: "m", Key: pkitest.Ed25519}) }},
		{name: "member/dialer/expired", port: "member", bad: "dialer", want: reason.CertExpired, leaf: func(w *world) *pkitest.Leaf { return w.rca.Expired("m") }},
		{name: "member/dialer/not yet valid", port: "member", bad: "dialer", want: reason.CertNotYetValid, leaf: func(w *world) *pkitest.Leaf { return w.rca.NotYetValid("m") }},
		{name: "member/dialer/revoked", port: "member", bad: "dialer", want: reason.Revoked, revoke: true, leaf: func(w *world) *pkitest.Leaf { return w.rca.Member("m") }},
		{name: "member/dialer/serverAuth only", port: "member", bad: "dialer", want: reason.MissingClientAuth, leaf: func(w *world) *pkitest.Leaf { return w.rca.ServerOnly("m") }},
		{name: "member/dialer/clientAuth only", port: "member", bad: "dialer", want: reason.ClientCertOnMemberPort, leaf: func(w *world) *pkitest.Leaf { return w.rca.ClientOnly("m") }},
		{name: "member/dialer/key usage without digitalSignature", port: "member", bad: "dialer", want: reason.BadKeyUsage, leaf: func(w *world) *pkitest.Leaf { return w.rca.BadKeyUsage("m") }},
		{name: "member/dialer/wrong key", port: "member", bad: "dialer", want: reason.KeyMismatch, leaf: func(w *world) *pkitest.Leaf { return w.rca.WrongKey(w.rca.Member("m")) }},
		{name: "member/dialer/DN not authorised", port: "member", bad: "dialer", want: reason.DNNotAuthorised, dn: true, leaf: func(w *world) *pkitest.Leaf { return w.rca.Member("intruder") },
			members: func(w *world, _ string) map[string]string {
				return map[string]string{"127.0.0.9:1": dnOfLeaf(w.member)}
			}},
		{name: "member/dialer/no certificate", port: "member", bad: "dialer", want: reason.NoCertificate, noCert: true},
		// One CA may sign for several groups: a member of another group, or a certificate
		// bound to none, is refused under both policies.
		{name: "member/dialer/another group", port: "member", bad: "dialer", want: reason.WrongGroup, leaf: func(w *world) *pkitest.Leaf { return w.rca.Issue(pkitest.Spec{CN: "m", Group: "other"}) }},
		{name: "member/dialer/no group", port: "member", bad: "dialer", want: reason.WrongGroup, leaf: func(w *world) *pkitest.Leaf { return w.rca.Issue(pkitest.Spec{CN: "m", NoGroup: true}) }},
		{name: "member/dialer/bare certificate", port: "member", bad: "dialer", want: reason.WrongGroup, leaf: func(w *world) *pkitest.Leaf { return w.rca.Issue(pkitest.Spec{CN: "m", NoExtensions: true}) }},
		{name: "member/dialer/TLS 1.2 on a 1.3 port", port: "member", bad: "dialer", want: reason.ProtocolTooOld, raw: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		{name: "member/dialer/CBC suite on a 1.2 port", port: "member", bad: "dialer", want: reason.NoCommonCipher,
			raw: func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
			},
			src: func(c *Config) { c.MinVersion = tls.VersionTLS12 }},
		{name: "member/dialer/plaintext HTTP", port: "member", bad: "dialer", want: reason.Plaintext, text: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "member/dialer/plaintext binary", port: "member", bad: "dialer", want: reason.Plaintext, text: "\x00\x01\x02raft"},

		// Member port: the acceptor's certificate is bad, the dialer detects it.
		{name: "member/acceptor/unknown CA", port: "member", bad: "acceptor", want: reason.UnknownCA, leaf: func(w *world) *pkitest.Leaf { return w.other.Member("m") }},
		{name: "member/acceptor/self-signed", port: "member", bad: "acceptor", want: reason.UnknownCA, leaf: func(*world) *pkitest.Leaf { return pkitest.SelfSigned(t, "lone") }},
		{name: "member/acceptor/expired", port: "member", bad: "acceptor", want: reason.CertExpired, leaf: func(w *world) *pkitest.Leaf { return w.rca.Expired("m") }},
		{name: "member/acceptor/not yet valid", port: "member", bad: "acceptor", want: reason.CertNotYetValid, leaf: func(w *world) *pkitest.Leaf { return w.rca.NotYetValid("m") }},
		{name: "member/acceptor/revoked", port: "member", bad: "acceptor", want: reason.Revoked, revoke: true, leaf: func(w *world) *pkitest.Leaf { return w.rca.Member("m") }},
		{name: "member/acceptor/serverAuth only", port: "member", bad: "acceptor", want: reason.MissingClientAuth, leaf: func(w *world) *pkitest.Leaf { return w.rca.ServerOnly("m") }},
		{name: "member/acceptor/clientAuth only", port: "member", bad: "acceptor", want: reason.ClientCertOnMemberPort, leaf: func(w *world) *pkitest.Leaf { return w.rca.ClientOnly("m") }},
		{name: "member/acceptor/key usage without digitalSignature", port: "member", bad: "acceptor", want: reason.BadKeyUsage, leaf: func(w *world) *pkitest.Leaf { return w.rca.BadKeyUsage("m") }},
		{name: "member/acceptor/wrong key", port: "member", bad: "acceptor", want: reason.KeyMismatch, leaf: func(w *world) *pkitest.Leaf { return w.rca.WrongKey(w.rca.Member("m")) }},
		{name: "member/acceptor/another group", port: "member", bad: "acceptor", want: reason.WrongGroup, leaf: func(w *world) *pkitest.Leaf { return w.rca.Issue(pkitest.Spec{CN: "m", Group: "other"}) }},
		{name: "member/acceptor/DN not authorised", port: "member", bad: "acceptor", want: reason.DNNotAuthorised, dn: true, leaf: func(w *world) *pkitest.Leaf { return w.rca.Member("intruder") },
			members: func(w *world, _ string) map[string]string {
				return map[string]string{"127.0.0.9:1": dnOfLeaf(w.member)}
			}},
		{name: "member/acceptor/wrong member at the address", port: "member", bad: "acceptor", want: reason.WrongMember, dn: true, leaf: func(w *world) *pkitest.Leaf { return w.rca.Member("b") },
			members: func(w *world, addr string) map[string]string {
				return map[string]string{addr: "CN=a,O=mirrorkv test", "127.0.0.9:1": "CN=b,O=mirrorkv test"}
			}},
		{name: "member/acceptor/TLS 1.2 only", port: "member", bad: "acceptor", want: reason.ProtocolTooOld, raw: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		{name: "member/acceptor/other protocol (ALPN)", port: "member", bad: "acceptor", want: reason.ALPNMismatch, raw: func(c *tls.Config) { c.NextProtos = []string{"h2"} }},
		{name: "member/acceptor/plaintext", port: "member", bad: "acceptor", want: reason.Plaintext, text: "HTTP/1.1 400 Bad Request\r\n\r\n"},

		// Client port: the client's certificate is bad, the HTTPS listener detects it.
		{name: "client/dialer/member CA certificate", port: "client", bad: "dialer", want: reason.UnknownCA, leaf: func(w *world) *pkitest.Leaf { return w.rca.Client("alice") }},
		{name: "client/dialer/expired", port: "client", bad: "dialer", want: reason.CertExpired, leaf: func(w *world) *pkitest.Leaf { return w.cca.Expired("alice") }},
		{name: "client/dialer/not yet valid", port: "client", bad: "dialer", want: reason.CertNotYetValid, leaf: func(w *world) *pkitest.Leaf { return w.cca.NotYetValid("alice") }},
		{name: "client/dialer/revoked", port: "client", bad: "dialer", want: reason.Revoked, revoke: true, leaf: func(w *world) *pkitest.Leaf { return w.cca.Client("alice") }},
		{name: "client/dialer/serverAuth only", port: "client", bad: "dialer", want: reason.MissingClientAuth, leaf: func(w *world) *pkitest.Leaf { return w.cca.ServerOnly("alice") }},
		{name: "client/dialer/key usage without digitalSignature", port: "client", bad: "dialer", want: reason.BadKeyUsage, leaf: func(w *world) *pkitest.Leaf { return w.cca.BadKeyUsage("alice") }},
		{name: "client/dialer/wrong key", port: "client", bad: "dialer", want: reason.KeyMismatch, leaf: func(w *world) *pkitest.Leaf { return w.cca.WrongKey(w.cca.Client("alice")) }},
		{name: "client/dialer/no certificate", port: "client", bad: "dialer", want: reason.NoCertificate, noCert: true},
		{name: "client/dialer/TLS 1.1", port: "client", bad: "dialer", want: reason.ProtocolTooOld, raw: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }},
		{name: "client/dialer/plaintext GET", port: "client", bad: "dialer", want: reason.Plaintext, text: "GET /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n", answer: `"code":111`},
		{name: "client/dialer/plaintext DELETE", port: "client", bad: "dialer", want: reason.Plaintext, text: "DELETE /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n", answer: "HTTP/1.1 400 Bad Request"},
		{name: "client/dialer/plaintext PATCH", port: "client", bad: "dialer", want: reason.Plaintext, text: "PATCH /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n", answer: "use https:// and a client certificate"},
		{name: "client/dialer/plaintext binary", port: "client", bad: "dialer", want: reason.Plaintext, text: "\x00\x00\x00\x10junk"},

		// Client port: the server's certificate is bad, the client side (CLI, Go client) detects it.
		{name: "client/acceptor/unknown CA", port: "client", bad: "acceptor", want: reason.UnknownCA, leaf: func(w *world) *pkitest.Leaf { return w.other.Member("m") }},
		{name: "client/acceptor/expired", port: "client", bad: "acceptor", want: reason.CertExpired, leaf: func(w *world) *pkitest.Leaf { return w.rca.Expired("m") }},
		{name: "client/acceptor/not yet valid", port: "client", bad: "acceptor", want: reason.CertNotYetValid, leaf: func(w *world) *pkitest.Leaf { return w.rca.NotYetValid("m") }},
		{name: "client/acceptor/clientAuth only", port: "client", bad: "acceptor", want: reason.MissingServerAuth, leaf: func(w *world) *pkitest.Leaf { return w.rca.ClientOnly("m") }},
		{name: "client/acceptor/name not in SANs", port: "client", bad: "acceptor", want: reason.NameMismatch, leaf: func(w *world) *pkitest.Leaf {
			return w.rca.Issue(pkitest.Spec{CN: "m", DNS: []string{"elsewhere.example"}, IPs: []net.IP{net.IPv4(10, 9, 9, 9)}})
		}},
		{name: "client/acceptor/revoked", port: "client", bad: "acceptor", want: reason.Revoked, revoke: true, leaf: func(w *world) *pkitest.Leaf { return w.rca.Member("m") }},
		{name: "client/acceptor/wrong key", port: "client", bad: "acceptor", want: reason.KeyMismatch, leaf: func(w *world) *pkitest.Leaf { return w.rca.WrongKey(w.rca.Member("m")) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.port + "/" + tc.bad {
			case "member/dialer", "client/dialer":
				runBadDialer(t, w, tc)
			case "member/acceptor", "client/acceptor":
				runBadAcceptor(t, w, tc)
			}
		})
	}
}

// crlFor returns a CRL file of ca, listing l when revoke is set.
func crlFor(t *testing.T, ca *pkitest.CA, l *pkitest.Leaf, revoke bool) string {
	if revoke {
		ca.Revoke(l)
	}
	return ca.WriteFile(strings.ReplaceAll(t.Name(), "/", "_")+".crl", ca.CRLPEM())
}

func (tc badCase) badLeaf(w *world) *pkitest.Leaf {
	switch {
	case tc.noCert:
		return nil
	case tc.leaf != nil:
		return tc.leaf(w)
	case tc.port == "client" && tc.bad == "dialer":
		return w.client
	}
	return w.member
}

// runBadDialer: our listener (member or client port) must refuse the raw dialer.
func runBadDialer(t *testing.T, w *world, tc badCase) {
	bad := tc.badLeaf(w)
	log := newReasonLog()
	role, ca, wrap := PortMember, w.rca, (*Source).Listen
	if tc.port == "client" {
		role, ca, wrap = PortClient, w.cca, (*Source).HTTPSListener
	}
	crl := crlFor(t, ca, bad, tc.revoke && bad != nil)
	src := sourceFor(t, role, w.member, ca.CertPath, crl, log.logger(), func(c *Config) {
		if tc.dn {
			c.Policy = PolicyDN
			c.Members = tc.members(w, "")
		}
		if tc.src != nil {
			tc.src(c)
		}
	})
	addr, accepted := listen(t, func(ln net.Listener) net.Listener { return wrap(src, ln) })
	var err error
	if tc.text != "" {
		err = plainExchange(t, addr, tc.text, tc.answer)
	} else {
		err = rawDial(t, addr, bad, func(c *tls.Config) {
			if tc.port == "client" {
				c.NextProtos = []string{ALPNHTTP}
			}
			if tc.raw != nil {
				tc.raw(c)
			}
		})
	}
	if err == nil {
		t.Errorf("bad dialer got no error")
	}
	if got := log.next(t); got != tc.want {
		t.Errorf("listener reported reason %d %s, want %d %s", got, got.Text(), tc.want, tc.want.Text())
	}
	select {
	case c := <-accepted:
		t.Errorf("Accept returned a refused connection from %s", c.RemoteAddr())
	default:
	}
}

// plainExchange sends text and returns the error seen reading the answer, which must
// contain want (when want is set).
func plainExchange(t *testing.T, addr, text, want string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, text); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(c)
	if want != "" && !strings.Contains(string(answer), want) {
		t.Errorf("answer to plaintext = %q, want it to contain %q", answer, want)
	}
	if want != "" {
		resp, rerr := http.ReadResponse(bufio.NewReader(strings.NewReader(string(answer))), nil)
		if rerr != nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("answer is not a 400 response: %v", rerr)
		}
	}
	if err == nil {
		err = errors.New("connection closed after plaintext")
	}
	return err
}

// runBadAcceptor: our dialing side (member Dial or ClientTLSConfig) must refuse the raw
// acceptor, and the acceptor must see its handshake fail.
func runBadAcceptor(t *testing.T, w *world, tc badCase) {
	bad := tc.badLeaf(w)
	var (
		addr string
		errc <-chan error
	)
	if tc.text != "" {
		addr, errc = plainServer(t, tc.text)
	} else {
		addr, errc = rawServer(t, bad, tc.raw)
	}
	var code reason.Code
	if tc.port == "member" {
		src := sourceFor(t, PortMember, w.member, w.rca.CertPath, crlFor(t, w.rca, bad, tc.revoke), nil, func(c *Config) {
			if tc.dn {
				c.Policy = PolicyDN
				c.Members = tc.members(w, addr)
			}
		})
		conn, err := src.Dial(t.Context(), addr)
		if err == nil {
			conn.Close()
			t.Fatal("Dial accepted a bad acceptor")
		}
		he, ok := errors.AsType[*HandshakeError](err)
		if !ok {
			t.Fatalf("Dial error %v is not a *HandshakeError", err)
		}
		code = he.Reason
	} else {
		src := sourceFor(t, PortClient, w.client, w.rca.CertPath, crlFor(t, w.rca, bad, tc.revoke), nil)
		conn, err := tls.Dial("tcp", addr, src.ClientTLSConfig())
		if err == nil {
			conn.Close()
			t.Fatal("client accepted a bad server")
		}
		code = Explain(err).Code
	}
	if code != tc.want {
		t.Errorf("dialer reported reason %d %s, want %d %s", code, code.Text(), tc.want, tc.want.Text())
	}
	if err := <-errc; err == nil {
		t.Error("the bad acceptor saw no error")
	}
}

// plainServer answers every connection with text, without TLS.
func plainServer(t *testing.T, text string) (string, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, text)
		_, err = io.ReadAll(c)
		if err == nil {
			err = io.EOF // the dialer hung up on the plaintext
		}
		errc <- err
	}()
	return ln.Addr().String(), errc
}
