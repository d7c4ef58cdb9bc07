package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// reasonLog is a slog handler that passes the reason code of every record that has one to
// a channel, so that a test can wait for the side that detected a refusal to report it.
type reasonLog struct{ ch chan reason.Code }

func newReasonLog() *reasonLog { return &reasonLog{ch: make(chan reason.Code, 64)} }

func (h *reasonLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *reasonLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *reasonLog) WithGroup(string) slog.Handler            { return h }
func (h *reasonLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			select {
			case h.ch <- reason.Code(a.Value.Int64()):
			default:
			}
		}
		return true
	})
	return nil
}

func (h *reasonLog) logger() *slog.Logger { return slog.New(h) }

// next waits for the next reported reason.
func (h *reasonLog) next(t testing.TB) reason.Code {
	t.Helper()
	select {
	case c := <-h.ch:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no refusal was logged")
		return 0
	}
}

// noSystemRoots stands in for a system trust store that trusts nothing of ours.
func noSystemRoots() (*x509.CertPool, error) { return x509.NewCertPool(), nil }

// sourceFor builds a Source for leaf, trusting caFile, with optional CRL and tweaks.
func sourceFor(t testing.TB, role Port, leaf *pkitest.Leaf, caFile, crlFile string, log *slog.Logger, mod ...func(*Config)) *Source {
	t.Helper()
	cfg := Config{Port: role, CertFile: leaf.CertPath, KeyFile: leaf.KeyPath, CAFile: caFile, CRLFile: crlFile,
		Policy: PolicyCA, SystemRoots: noSystemRoots}
	for _, f := range mod {
		f(&cfg)
	}
	s, err := NewSource(cfg, log)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return s
}

// listen starts a loopback listener wrapped by wrap; Accept's conns go to the channel.
func listen(t testing.TB, wrap func(net.Listener) net.Listener) (string, <-chan net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := wrap(inner)
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	return ln.Addr().String(), ch
}

// rawServer accepts one connection on loopback with a plain crypto/tls server that presents
// leaf (no policy of ours), and reports its handshake error.
func rawServer(t testing.TB, leaf *pkitest.Leaf, mod func(*tls.Config)) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{tlsCert(t, leaf)}, ClientAuth: tls.RequireAnyClientCert,
		NextProtos: []string{ALPNMember, ALPNHTTP}}
	if mod != nil {
		mod(cfg)
	}
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			errc <- err
			return
		}
		_, _ = tc.Write([]byte{ackByte})
		_, err = io.ReadFull(tc, make([]byte, 1))
		errc <- err
	}()
	return ln.Addr().String(), errc
}

// rawDial handshakes with addr as a plain crypto/tls client presenting leaf (nil: no
// certificate), then waits for one byte, where a TLS 1.3 refusal shows.
func rawDial(t testing.TB, addr string, leaf *pkitest.Leaf, mod func(*tls.Config)) error {
	t.Helper()
	cert := &tls.Certificate{}
	if leaf != nil {
		c := tlsCert(t, leaf)
		cert = &c
	}
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNMember},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }}
	if mod != nil {
		mod(cfg)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadFull(c, make([]byte, 1))
	return err
}

func tlsCert(t testing.TB, leaf *pkitest.Leaf) tls.Certificate {
	t.Helper()
	// Built by hand, not with X509KeyPair, so that a mismatched key can be presented.
	return tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}
}

func tempPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }
