package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSource_SetMembersClosesUnauthorised(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	a, b := rca.Member("a"), rca.Member("b")
	dn := func(l *pkitest.Leaf) string { return dnOf(l.Cert) }
	log := newReasonLog()
	acc := sourceFor(t, PortMember, a, rca.CertPath, "", log.logger(), func(c *Config) { c.Policy = PolicyDN })
	addr, accepted := listen(t, acc.Listen)
	members := map[string]string{addr: dn(a), "127.0.0.9:1": dn(b)}
	acc.SetMembers(members)
	dialer := sourceFor(t, PortMember, b, rca.CertPath, "", nil, func(c *Config) { c.Policy = PolicyDN; c.Members = members })
	conn, err := dialer.Dial(t.Context(), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	in := <-accepted
	exchange(t, conn, in)

	acc.SetMembers(map[string]string{addr: dn(a)}) // b is removed from the group
	if got := log.next(t); got != reason.DNNotAuthorised {
		t.Errorf("closing reason %d, want DNNotAuthorised", got)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the removed member's connection is still open")
	}
	if _, err := dialer.Dial(t.Context(), addr); err == nil {
		t.Error("the removed member could dial again")
	}
}

func TestSource_WatchReloadsChangedFiles(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	dir := t.TempDir()
	first := rca.Member("m")
	cert := pkitest.WriteFile(t, dir+"/cert.pem", first.CertPEM)
	key := pkitest.WriteFile(t, dir+"/key.pem", first.KeyPEM)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := sourceFor(t, PortMember, &pkitest.Leaf{CertPath: cert, KeyPath: key}, rca.CertPath, "", nil, func(c *Config) { c.Metrics = metrics })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.Watch(ctx, 5*time.Millisecond)

	pkitest.WriteFile(t, cert, []byte("broken")) // refused and counted, old cert stays
	waitFor(t, func() bool { return counter(t, reg, "mirrorkv_tls_reload_errors_total") >= 1 })
	if !s.LeafNotAfter().Equal(first.Cert.NotAfter) {
		t.Fatal("a broken file replaced the certificate")
	}
	second := rca.Issue(pkitest.Spec{CN: "m", NotAfter: time.Now().Add(48 * time.Hour)})
	pkitest.WriteFile(t, key, second.KeyPEM)
	pkitest.WriteFile(t, cert, second.CertPEM)
	waitFor(t, func() bool { return s.LeafNotAfter().Equal(second.Cert.NotAfter) })
	if left := gauge(t, reg, "mirrorkv_tls_leaf_expiry_seconds"); left < 24*3600 {
		t.Errorf("leaf expiry gauge = %v s, want the new certificate's (about 48 h)", left)
	}
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func families(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	var sum float64
	for _, m := range families(t, reg, name) {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	for _, m := range families(t, reg, name) {
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no %s metric", name)
	return 0
}

func TestMetrics_CountRefusalsByReason(t *testing.T) {
	w := newWorld(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log := newReasonLog()
	src := sourceFor(t, PortClient, w.member, w.cca.CertPath, "", log.logger(), func(c *Config) { c.Metrics = metrics })
	addr, _ := listen(t, src.HTTPSListener)
	_ = rawDial(t, addr, w.cca.Expired("x"), func(c *tls.Config) { c.NextProtos = nil })
	log.next(t)
	_ = plainExchange(t, addr, "PATCH / HTTP/1.1\r\n\r\n", "400")
	log.next(t)
	var found bool
	for _, m := range families(t, reg, "mirrorkv_tls_handshake_refusals_total") {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		found = found || (labels["port"] == "client" && labels["reason"] == "102" && m.GetCounter().GetValue() == 1)
	}
	if !found {
		t.Error("no refusal counted with port=client reason=102")
	}
	if n := counter(t, reg, "mirrorkv_tls_plaintext_attempts_total"); n != 1 {
		t.Errorf("plaintext attempts = %v, want 1", n)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice went unnoticed")
	}
}

func TestExplain(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	leaf := rca.Member("m").Cert
	cases := []struct {
		name string
		err  error
		want reason.Code
	}{
		{"nil", nil, reason.OK},
		{"handshake error", &HandshakeError{Reason: reason.WrongMember, Peer: "x", Err: errors.New("boom")}, reason.WrongMember},
		{"reason error", reason.Wrap(reason.Revoked, errors.New("r")), reason.Revoked},
		{"unknown authority", x509.UnknownAuthorityError{Cert: leaf}, reason.UnknownCA},
		{"expired", x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired, Detail: "current time 2030 is after 2027"}, reason.CertExpired},
		{"not yet valid", x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired, Detail: "current time 2020 is before 2026"}, reason.CertNotYetValid},
		{"usage without clientAuth", x509.CertificateInvalidError{Cert: rca.ServerOnly("s").Cert, Reason: x509.IncompatibleUsage}, reason.MissingClientAuth},
		{"usage without serverAuth", x509.CertificateInvalidError{Cert: rca.ClientOnly("c").Cert, Reason: x509.IncompatibleUsage}, reason.MissingServerAuth},
		{"hostname", x509.HostnameError{Certificate: leaf, Host: "elsewhere"}, reason.NameMismatch},
		{"remote bad certificate", remoteAlert("tls: bad certificate"), reason.RefusedByPeer},
		{"remote unknown CA", remoteAlert("tls: unknown certificate authority"), reason.UnknownCA},
		{"remote expired", remoteAlert("tls: expired certificate"), reason.CertExpired},
		{"remote certificate required", remoteAlert("tls: certificate required"), reason.NoCertificate},
		{"remote protocol version", remoteAlert("tls: protocol version not supported"), reason.ProtocolTooOld},
		{"no ack", ErrNoAck, reason.RefusedByPeer},
		{"deadline", context.DeadlineExceeded, reason.HandshakeTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Explain(tc.err)
			if d.Code != tc.want {
				t.Fatalf("Explain(%v).Code = %d, want %d", tc.err, d.Code, tc.want)
			}
			if tc.err != nil && (d.Summary == "" || d.Fix != tc.want.Fix()) {
				t.Errorf("diagnosis %+v lacks a summary or the code's fix", d)
			}
		})
	}
}

type netOpError = net.OpError

type alertText string

func (a alertText) Error() string { return string(a) }

func remoteAlert(text string) error {
	return &netOpError{Op: "remote error", Err: alertText(text)}
}

func TestHandshakeError_Message(t *testing.T) {
	err := &HandshakeError{Reason: reason.Revoked, Peer: "10.0.0.1:7000", Err: errors.New("x")}
	if msg := err.Error(); !strings.Contains(msg, "10.0.0.1:7000") || !strings.Contains(msg, "104") {
		t.Errorf("message %q lacks the peer or the code", msg)
	}
}

func TestListen_SilentPeerTimesOut(t *testing.T) {
	w := newWorld(t)
	log := newReasonLog()
	src := sourceFor(t, PortMember, w.member, w.rca.CertPath, "", log.logger(), func(c *Config) { c.HandshakeTimeout = 50 * time.Millisecond })
	addr, _ := listen(t, src.Listen)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := log.next(t); got != reason.HandshakeTimeout {
		t.Errorf("reason %d, want HandshakeTimeout", got)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection was not closed")
	}
}

// Accept never fails for one bad connection (raft would back off for up to a second); it
// returns an error only once the listener is closed.
func TestListen_AcceptErrorsOnlyOnClose(t *testing.T) {
	w := newWorld(t)
	log := newReasonLog()
	src := sourceFor(t, PortMember, w.member, w.rca.CertPath, "", log.logger())
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := src.Listen(inner)
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	_ = plainExchange(t, ln.Addr().String(), "\x00junk", "")
	_ = rawDial(t, ln.Addr().String(), w.other.Member("x"), nil)
	log.next(t)
	log.next(t)
	select {
	case err := <-errc:
		t.Fatalf("Accept returned early: %v", err)
	default:
	}
	ln.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
}

// A new member knows no DN yet: it may reach a join address when the member there matches a
// pin, but only until the membership names the member at that address, and never another
// address.
func TestSource_JoinAddrsTrustedUntilKnown(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	a, b, c := rca.Member("a"), rca.Member("b"), rca.Member("c")
	dn := func(l *pkitest.Leaf) string { return dnOf(l.Cert) }
	acc := sourceFor(t, PortMember, a, rca.CertPath, "", nil, func(c *Config) { c.Policy = PolicyDN })
	addr, accepted := listen(t, acc.Listen)
	acc.SetMembers(map[string]string{addr: dn(a), "127.0.0.9:1": dn(b)})
	go func() {
		for conn := range accepted {
			conn.Close()
		}
	}()

	stranger := sourceFor(t, PortMember, b, rca.CertPath, "", nil, func(c *Config) { c.Policy = PolicyDN })
	if _, err := stranger.Dial(t.Context(), addr); err == nil {
		t.Fatal("a dial to an unknown address that is not a join address passed policy dn")
	}
	joinWith := func(pins ...string) *Source {
		return sourceFor(t, PortMember, b, rca.CertPath, "", nil, func(c *Config) {
			c.Policy, c.JoinAddrs, c.JoinPins = PolicyDN, []string{addr}, pins
		})
	}
	fp := "sha256:" + strings.ToLower(pki.Fingerprint(a.Cert))
	for _, tc := range []struct {
		name string
		pins []string
		ok   bool
	}{
		{"no pin", nil, false},
		{"another member's DN", []string{dn(c)}, false},
		{"another member's fingerprint", []string{"sha256:" + strings.ReplaceAll(pki.Fingerprint(c.Cert), ":", "")}, false},
		{"the DN, written another way", []string{"/O=mirrorkv test/CN=a"}, true},
		{"the fingerprint, as openssl prints it", []string{fp}, true},
		{"one of several pins", []string{dn(c), dn(a)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := joinWith(tc.pins...).Dial(t.Context(), addr)
			if tc.ok {
				if err != nil {
					t.Fatalf("dial with pins %q: %v", tc.pins, err)
				}
				conn.Close()
				return
			}
			if he, ok := errors.AsType[*HandshakeError](err); !ok || he.Reason != reason.JoinPinMismatch {
				t.Fatalf("dial with pins %q = %v; want a JoinPinMismatch refusal", tc.pins, err)
			}
		})
	}
	joiner := joinWith(dn(a))
	conn, err := joiner.Dial(t.Context(), addr)
	if err != nil {
		t.Fatalf("dial to the join address before the membership is known: %v", err)
	}
	conn.Close()
	joiner.SetMembers(map[string]string{addr: dn(c)}) // the membership says c lives there
	_, err = joiner.Dial(t.Context(), addr)
	if he, ok := errors.AsType[*HandshakeError](err); !ok || he.Reason != reason.WrongMember {
		t.Fatalf("dial to a join address whose known DN differs = %v; want a WrongMember refusal", err)
	}
}
