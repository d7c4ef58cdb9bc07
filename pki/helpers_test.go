package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// t0 is the fixed "now" of the table tests.
var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// fixedClock returns a clock stuck at now with a seeded random source.
func fixedClock(now time.Time) Clock {
	return Clock{Now: func() time.Time { return now }, Rand: mrand.NewChaCha8([32]byte{1})}
}

// newTestCA makes a CA in a temp dir at t0 (or opts' clock).
func newTestCA(tb testing.TB, opts CAOptions) *CA {
	tb.Helper()
	if opts.Now == nil {
		opts.Clock = fixedClock(t0)
	}
	opts.Unencrypted = len(opts.Passphrase) == 0
	ca, err := InitCA(filepath.Join(tb.TempDir(), "ca"), opts)
	if err != nil {
		tb.Fatalf("InitCA: %v", err)
	}
	return ca
}

func mustKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// memberTemplate is what 'ca issue' makes for a member, valid from t0-1h for a year.
func memberTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{GroupURI(DefaultGroup)},
	}
}

// signWith signs tmpl for key with the parent certificate and key, returning PEM and cert.
func signWith(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) (*x509.Certificate, []byte) {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		tb.Fatalf("CreateCertificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func keyPEM(tb testing.TB, k crypto.Signer) []byte {
	tb.Helper()
	b, err := MarshalPrivateKey(k, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func hasFinding(fs []Finding, rule string, sev Severity) bool {
	for _, f := range fs {
		if f.Rule == rule && f.Severity == sev {
			return true
		}
	}
	return false
}

// emptyRoots stands for a system trust store that holds nothing.
func emptyRoots() (*x509.CertPool, error) { return x509.NewCertPool(), nil }
