package pkitest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// Revoke adds l to the CA's revocation list; the next CRL lists it.
func (ca *CA) Revoke(l *Leaf) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.revoked = append(ca.revoked, x509.RevocationListEntry{
		SerialNumber:   l.Cert.SerialNumber,
		RevocationTime: time.Now().Add(-time.Minute),
	})
}

// CRLDER returns a fresh CRL, DER-encoded, signed by the CA, valid for 30 days.
func (ca *CA) CRLDER() []byte {
	ca.tb.Helper()
	return ca.CRLUntil(time.Now().Add(30 * 24 * time.Hour))
}

// CRLUntil returns a fresh CRL, DER-encoded, signed by the CA, whose next update is next.
func (ca *CA) CRLUntil(next time.Time) []byte {
	ca.tb.Helper()
	this := time.Now().Add(-time.Minute)
	if !this.Before(next) {
		this = next.Add(-time.Hour) // an expired CRL: issued before it ran out
	}
	ca.mu.Lock()
	ca.crlNum++
	tmpl := &x509.RevocationList{
		Number:                    big.NewInt(ca.crlNum),
		ThisUpdate:                this,
		NextUpdate:                next,
		RevokedCertificateEntries: append([]x509.RevocationListEntry(nil), ca.revoked...),
	}
	ca.mu.Unlock()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		ca.tb.Fatalf("create CRL of %s: %v", ca.Name, err)
	}
	return der
}

// CRLPEM returns a fresh CRL, PEM-encoded.
func (ca *CA) CRLPEM() []byte {
	ca.tb.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.CRLDER()})
}

// WriteCRL writes a fresh PEM CRL to name in the CA's directory and returns its path.
func (ca *CA) WriteCRL(name string) string {
	ca.tb.Helper()
	return ca.WriteFile(name, ca.CRLPEM())
}

// ForeignCRL returns a PEM CRL that claims to be the CA's (same issuer name) but is signed
// by another key: a CRL a member must refuse.
func (ca *CA) ForeignCRL() []byte {
	ca.tb.Helper()
	impostor := NewCA(ca.tb, ca.Name)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, impostor.Cert, impostor.Key)
	if err != nil {
		ca.tb.Fatalf("create foreign CRL: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatalf("parse URI SAN %q: %v", s, err)
	}
	return u
}
