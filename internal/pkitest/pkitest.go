// Package pkitest makes test certificate authorities and certificates, good and deliberately
// bad, in a test's temporary directory. It writes PEM files and returns their paths, so that
// tests exercise the same file-loading code as a running member. Every helper takes a
// testing.TB and fails the test on error; nothing here is meant for production use.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// KeyType selects the key algorithm of a generated certificate.
type KeyType string

// Key types. RSA keys are 2048 bits: big enough for crypto/tls, quick enough for tests.
const (
	ECDSA   KeyType = "ecdsa"
	Ed25519 KeyType = "ed25519"
	RSA     KeyType = "rsa"
)

// CA is a test certificate authority whose files live in a test's temporary directory.
type CA struct {
	tb       testing.TB
	Name     string
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertPEM  []byte
	CertPath string // the CA certificate alone, PEM
	dir      string

	mu      sync.Mutex
	revoked []x509.RevocationListEntry
	crlNum  int64
	serial  int64
}

// NewCA makes a self-signed ECDSA P-256 CA named name (its CN), valid from an hour ago for
// ten years, with certSign and crlSign.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := NewKey(tb, ECDSA)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mirrorkv test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(tb, key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse CA %s: %v", name, err)
	}
	ca := &CA{tb: tb, Name: name, Cert: cert, Key: key, dir: tb.TempDir(), serial: 1}
	ca.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ca.CertPath = ca.WriteFile(name+"-ca.pem", ca.CertPEM)
	return ca
}

// Dir is the directory the CA writes its files to.
func (ca *CA) Dir() string { return ca.dir }

// WriteFile writes data to name in the CA's directory atomically (write, then rename, so
// that a watcher never sees half a file) and returns the path.
func (ca *CA) WriteFile(name string, data []byte) string {
	ca.tb.Helper()
	return WriteFile(ca.tb, filepath.Join(ca.dir, name), data)
}

// WriteFile writes data to path atomically and returns path.
func WriteFile(tb testing.TB, path string, data []byte) string {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		tb.Fatalf("write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatalf("rename %s: %v", tmp, err)
	}
	return path
}

// Bundle writes the certificates of cas, in order, into one PEM file in dir and returns
// its path: a CA bundle as used during a rotation (old and new CA together).
func Bundle(tb testing.TB, path string, cas ...*CA) string {
	tb.Helper()
	var data []byte
	for _, ca := range cas {
		data = append(data, ca.CertPEM...)
	}
	return WriteFile(tb, path, data)
}

// NewKey generates a private key of type kt.
func NewKey(tb testing.TB, kt KeyType) crypto.Signer {
	tb.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case ECDSA, "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("unknown key type %q", kt)
	}
	if err != nil {
		tb.Fatalf("generate %s key: %v", kt, err)
	}
	return key
}

func keyID(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatalf("marshal public key: %v", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20]
}
