package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// TestCryptoTLSTexts pins the crypto/tls texts that classifyText depends on: each is made to
// happen in a real handshake between crypto/tls ends, and its error must still hold the
// fragment and be classified as before. A Go upgrade that rewords one fails here.
func TestCryptoTLSTexts(t *testing.T) {
	cert := selfSigned(t)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := tls.Certificate{Certificate: cert.Certificate, PrivateKey: otherKey}
	server := func(mod func(*tls.Config)) *tls.Config {
		c := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert}
		if mod != nil {
			mod(c)
		}
		return c
	}
	client := func(mod func(*tls.Config)) *tls.Config {
		c := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}
		if mod != nil {
			mod(c)
		}
		return c
	}
	cases := map[string]struct {
		srv, cli *tls.Config
		plain    bool // the client sends plaintext instead of a handshake
	}{
		"invalid signature by the":           {srv: server(nil), cli: client(func(c *tls.Config) { c.Certificates = []tls.Certificate{wrongKey} })},
		"didn't provide a certificate":       {srv: server(nil), cli: client(func(c *tls.Config) { c.Certificates = nil })},
		"does not look like a TLS handshake": {srv: server(nil), plain: true},
		"unsupported versions": {srv: server(func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }),
			cli: client(func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })},
		"no cipher suite supported": {
			srv: server(func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
			}),
			cli: client(func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
			})},
		"no key exchanges supported": {
			srv: server(func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP384} }),
			cli: client(func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP521} })},
		"application protocol": {srv: server(func(c *tls.Config) { c.NextProtos = []string{ALPNMember} }),
			cli: client(func(c *tls.Config) { c.NextProtos = []string{"h2"} })},
	}
	for _, want := range tlsTexts {
		tc, ok := cases[want.fragment]
		if !ok {
			t.Errorf("no handshake makes crypto/tls say %q: add one here", want.fragment)
			continue
		}
		t.Run(want.fragment, func(t *testing.T) {
			got, other := pipeHandshake(t, tc.srv, tc.cli, tc.plain)
			if got == nil || !strings.Contains(got.Error(), want.fragment) {
				t.Fatalf("crypto/tls said %v (the client: %v), which no longer holds %q: update tlsTexts", got, other, want.fragment)
			}
			if code := classify(got); code != want.code {
				t.Errorf("classify(%v) = %d, want %d", got, code, want.code)
			}
		})
	}
}

// TestAlertTexts checks that the alert a peer sends arrives with the text of
// tls.AlertError, which alertCode compares with, and that it maps to its code.
func TestAlertTexts(t *testing.T) {
	cert := selfSigned(t)
	// A TLS 1.3 server that wants a client certificate and gets none sends
	// certificate_required.
	srv := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert}
	_, cliErr := pipeHandshake(t, srv, &tls.Config{InsecureSkipVerify: true}, false)
	if cliErr == nil {
		t.Fatal("the client saw no refusal; want the server's certificate_required alert")
	}
	if !strings.Contains(cliErr.Error(), tls.AlertError(116).Error()) {
		t.Fatalf("the client got %v, which does not hold the text of tls.AlertError(116), %q", cliErr, tls.AlertError(116).Error())
	}
	if got := classify(cliErr); got != reason.NoCertificate {
		t.Fatalf("classify(%v) = %d, want %d (no certificate)", cliErr, got, reason.NoCertificate)
	}
	for a, code := range alertCodes {
		if got := alertCode(a.Error()); got != code {
			t.Errorf("alertCode(%q) = %d, want %d", a.Error(), got, code)
		}
	}
}

// pipeHandshake runs one handshake over loopback TCP (whose buffers let both ends send
// their alerts without waiting for the other to read) and returns both ends' errors.
func pipeHandshake(t *testing.T, srvCfg, cliCfg *tls.Config, plain bool) (srvErr, cliErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		s := tls.Server(conn, srvCfg)
		err = s.Handshake()
		if err == nil {
			_, err = s.Read(make([]byte, 1)) // TLS 1.3: the client's certificate is checked by now
		}
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	if plain {
		_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		return <-done, nil
	}
	c := tls.Client(conn, cliCfg)
	if cliErr = c.Handshake(); cliErr == nil {
		if _, cliErr = c.Write([]byte{0}); cliErr == nil {
			_, cliErr = c.Read(make([]byte, 1))
		}
	}
	return <-done, cliErr
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pin"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
