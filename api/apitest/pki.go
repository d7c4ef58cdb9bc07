// Package apitest runs the API in tests: a throwaway CA with server and client certificates
// (one per role), an in-memory Group and Reader, and an httptest TLS server that requires
// client certificates, as a member's client port does.
package apitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a test CA that signs both the server and the client certificates.
type PKI struct {
	Dir    string
	CAFile string
	Pool   *x509.CertPool
	Server tls.Certificate

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// ClientCert is a client certificate written to files.
type ClientCert struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// NewPKI makes a CA in tb.TempDir() and a server certificate for 127.0.0.1 and localhost.
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	p := &PKI{Dir: tb.TempDir(), Pool: x509.NewCertPool()}
	p.caKey = newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mirrorkv test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		tb.Fatalf("create CA: %v", err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		tb.Fatalf("parse CA: %v", err)
	}
	p.Pool.AddCert(p.ca)
	p.CAFile = filepath.Join(p.Dir, "ca.crt")
	writePEM(tb, p.CAFile, "CERTIFICATE", der)
	p.Server, _ = p.issue(tb, "m1", nil, x509.ExtKeyUsageServerAuth)
	return p
}

// Client issues a client certificate named cn with the access URI urn:mirrorkv:access:ROLE;
// role "" is readwrite, and role "none" leaves the URI out, which gives no access.
func (p *PKI) Client(tb testing.TB, cn, role string) ClientCert {
	tb.Helper()
	uris := roleURIs(role)
	cert, key := p.issue(tb, cn, uris, x509.ExtKeyUsageClientAuth)
	cc := ClientCert{CertFile: filepath.Join(p.Dir, cn+".crt"), KeyFile: filepath.Join(p.Dir, cn+".key"), TLS: cert}
	writePEM(tb, cc.CertFile, "CERTIFICATE", cert.Certificate[0])
	writePEM(tb, cc.KeyFile, "PRIVATE KEY", key)
	return cc
}

// ClientTLS is a client configuration with a new certificate of role.
func (p *PKI) ClientTLS(tb testing.TB, role string) *tls.Config {
	tb.Helper()
	cc := p.Client(tb, "client-"+role, role)
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p.Pool, Certificates: []tls.Certificate{cc.TLS}}
}

// ServerTLS is the client port's configuration: client certificates required and verified.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.Server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.Pool,
	}
}

func (p *PKI) issue(tb testing.TB, cn string, uris []*url.URL, eku x509.ExtKeyUsage) (tls.Certificate, []byte) {
	tb.Helper()
	key := newKey(tb)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatalf("serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
		URIs:         uris,
	}
	if eku == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		tb.Fatalf("issue %s: %v", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse %s: %v", cn, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("marshal key %s: %v", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, keyDER
}

// Leaf returns a parsed client certificate of role without writing files, for handler tests
// that set Request.TLS by hand.
func (p *PKI) Leaf(tb testing.TB, cn, role string) *x509.Certificate {
	tb.Helper()
	cert, _ := p.issue(tb, cn, roleURIs(role), x509.ExtKeyUsageClientAuth)
	return cert.Leaf
}

func roleURIs(role string) []*url.URL {
	switch role {
	case "none":
		return nil
	case "":
		role = "readwrite"
	}
	return []*url.URL{{Scheme: "urn", Opaque: "mirrorkv:access:" + role}}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	return key
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("write %s: %v", path, err)
	}
}

// CRL writes a CRL of the CA that lists revoked and runs out at next, and returns its path.
func (p *PKI) CRL(tb testing.TB, next time.Time, revoked ...*x509.Certificate) string {
	tb.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: next.Add(-48 * time.Hour), NextUpdate: next}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.ca, p.caKey)
	if err != nil {
		tb.Fatalf("create CRL: %v", err)
	}
	path := filepath.Join(tb.TempDir(), "crl.pem")
	writePEM(tb, path, "X509 CRL", der)
	return path
}
