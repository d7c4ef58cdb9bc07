package pkitest

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
)

// Spec describes a leaf certificate. The zero value (plus a CN) is a good member
// certificate: ECDSA, serverAuth and clientAuth, digitalSignature, SANs localhost and
// 127.0.0.1, valid from an hour ago for a day.
type Spec struct {
	CN        string
	Key       KeyType
	EKU       []x509.ExtKeyUsage // nil: serverAuth and clientAuth
	KeyUsage  x509.KeyUsage      // 0: digitalSignature (+keyEncipherment for RSA)
	NotBefore time.Time          // zero: an hour ago
	NotAfter  time.Time          // zero: a day from now
	DNS       []string           // nil: localhost
	IPs       []net.IP           // nil: 127.0.0.1
	URIs      []string
	// Group is the group the certificate is bound to (urn:mirrorkv:group:GROUP); empty
	// means pki.DefaultGroup. NoGroup leaves the group URI out.
	Group   string
	NoGroup bool

	// NoExtensions makes a bare certificate: no key usage, no extended key usage, no
	// SANs, no key identifiers. Go and mirrorkv treat a missing EKU as "any usage".
	NoExtensions bool
}

// Leaf is an issued certificate with its key and the paths of their PEM files.
type Leaf struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertPEM  []byte
	KeyPEM   []byte
	CertPath string
	KeyPath  string
}

// Issue signs a leaf described by spec and writes NAME.pem and NAME-key.pem (NAME is the
// CN plus the serial) to the CA's directory.
func (ca *CA) Issue(spec Spec) *Leaf {
	ca.tb.Helper()
	key := NewKey(ca.tb, spec.Key)
	tmpl := ca.template(spec, key.Public())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		ca.tb.Fatalf("issue %s: %v", spec.CN, err)
	}
	return ca.write(spec.CN, tmpl.SerialNumber, der, key)
}

func (ca *CA) template(spec Spec, pub crypto.PublicKey) *x509.Certificate {
	ca.mu.Lock()
	ca.serial++
	serial := big.NewInt(ca.serial<<16 | int64(time.Now().UnixNano()&0xffff))
	ca.mu.Unlock()
	now := time.Now()
	t := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CN, Organization: []string{"mirrorkv test"}},
		NotBefore:    or(spec.NotBefore, now.Add(-time.Hour)),
		NotAfter:     or(spec.NotAfter, now.Add(24*time.Hour)),
	}
	if spec.NoExtensions {
		return t
	}
	t.ExtKeyUsage = spec.EKU
	if t.ExtKeyUsage == nil {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	t.KeyUsage = spec.KeyUsage
	if t.KeyUsage == 0 {
		t.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := pub.(*rsa.PublicKey); ok {
			t.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
	}
	t.DNSNames = spec.DNS
	if t.DNSNames == nil {
		t.DNSNames = []string{"localhost"}
	}
	t.IPAddresses = spec.IPs
	if t.IPAddresses == nil {
		t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, u := range spec.URIs {
		t.URIs = append(t.URIs, mustURL(ca.tb, u))
	}
	if !spec.NoGroup {
		t.URIs = append(t.URIs, pki.GroupURI(cmp.Or(spec.Group, pki.DefaultGroup)))
	}
	t.SubjectKeyId = keyID(ca.tb, pub)
	return t
}

func (ca *CA) write(cn string, serial *big.Int, der []byte, key crypto.Signer) *Leaf {
	ca.tb.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.tb.Fatalf("parse %s: %v", cn, err)
	}
	l := &Leaf{Cert: cert, Key: key}
	l.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	l.KeyPEM = KeyPEM(ca.tb, key)
	base := cn + "-" + serial.String()
	l.CertPath = ca.WriteFile(base+".pem", l.CertPEM)
	l.KeyPath = ca.WriteFile(base+"-key.pem", l.KeyPEM)
	return l
}

// KeyPEM encodes key as PKCS #8 PEM.
func KeyPEM(tb testing.TB, key crypto.Signer) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func or(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// Member issues a good member certificate (both EKUs) named cn.
func (ca *CA) Member(cn string) *Leaf { ca.tb.Helper(); return ca.Issue(Spec{CN: cn}) }

// Client issues a good client certificate (clientAuth only, the readwrite access level)
// named cn.
func (ca *CA) Client(cn string) *Leaf {
	ca.tb.Helper()
	return ca.Issue(Spec{CN: cn, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []string{"urn:mirrorkv:access:readwrite"}, NoGroup: true})
}

// Expired issues a member certificate that expired an hour ago.
func (ca *CA) Expired(cn string) *Leaf {
	ca.tb.Helper()
	now := time.Now()
	return ca.Issue(Spec{CN: cn, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
}

// NotYetValid issues a member certificate valid only from tomorrow.
func (ca *CA) NotYetValid(cn string) *Leaf {
	ca.tb.Helper()
	now := time.Now()
	return ca.Issue(Spec{CN: cn, NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)})
}

// ServerOnly issues a certificate with the serverAuth extended key usage only.
func (ca *CA) ServerOnly(cn string) *Leaf {
	ca.tb.Helper()
	return ca.Issue(Spec{CN: cn, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
}

// ClientOnly issues a certificate with the clientAuth extended key usage only: a client
// certificate, which the member port must refuse.
func (ca *CA) ClientOnly(cn string) *Leaf { ca.tb.Helper(); return ca.Client(cn) }

// BadKeyUsage issues a member certificate whose key usage lacks digitalSignature.
func (ca *CA) BadKeyUsage(cn string) *Leaf {
	ca.tb.Helper()
	return ca.Issue(Spec{CN: cn, KeyUsage: x509.KeyUsageContentCommitment})
}

// WrongKey returns a copy of l whose key file holds a fresh key that does not match the
// certificate.
func (ca *CA) WrongKey(l *Leaf) *Leaf {
	ca.tb.Helper()
	key := NewKey(ca.tb, ECDSA)
	w := *l
	w.Key = key
	w.KeyPEM = KeyPEM(ca.tb, key)
	w.KeyPath = ca.WriteFile(l.Cert.Subject.CommonName+"-"+l.Cert.SerialNumber.String()+"-wrong-key.pem", w.KeyPEM)
	return &w
}

// SelfSigned makes a self-signed member certificate named cn that no CA vouches for.
func SelfSigned(tb testing.TB, cn string) *Leaf {
	tb.Helper()
	ca := NewCA(tb, cn)
	l := &Leaf{Cert: ca.Cert, Key: ca.Key, CertPEM: ca.CertPEM, CertPath: ca.CertPath}
	l.KeyPEM = KeyPEM(tb, ca.Key)
	l.KeyPath = ca.WriteFile(cn+"-key.pem", l.KeyPEM)
	return l
}
