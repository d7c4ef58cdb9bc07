package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrNotEndorsed is returned by CheckEndorsed for a CA that no trusted CA has endorsed.
var ErrNotEndorsed = errors.New("no CA in force endorses it; add a CA with `mirrorkv ca rotate apply`, which endorses the new CA with the old CA's key, or copy the bundle into the member's DIR/tls by hand")

// Endorse certifies another CA's subject and public key with ca's key: a cross-certificate.
// A member adds a CA to its trust over the admin API only with such an endorsement from a CA
// it already trusts (CheckEndorsed), so that an admin client certificate cannot make the
// group trust a CA of its own choosing; only a holder of a trusted CA's key can. The
// endorsement is a proof only: members trust the other CA's own certificate, never this one.
func (ca *CA) Endorse(other *x509.Certificate) ([]byte, error) {
	if !other.IsCA {
		return nil, fmt.Errorf("endorse %s: not a CA certificate", DNOf(other))
	}
	serial, err := randomSerial(ca.clock.rand())
	if err != nil {
		return nil, err
	}
	now := ca.clock.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            other.RawSubject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(other.NotAfter, ca.cert.NotAfter),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          other.SubjectKeyId,
	}
	cert, err := createCertificate(ca.clock.rand(), tmpl, ca.cert, other.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("endorse %s: %w", DNOf(other), err)
	}
	return pemCert(cert), nil
}

// CheckEndorsed reports whether one of endorsements, valid at now and signed by a CA of
// trusted, certifies added's subject and public key. It returns ErrNotEndorsed otherwise.
func CheckEndorsed(added *x509.Certificate, endorsements, trusted []*x509.Certificate, now time.Time) error {
	for _, e := range endorsements {
		if !bytes.Equal(e.RawSubject, added.RawSubject) || !publicKeyEqual(e.PublicKey, added.PublicKey) {
			continue
		}
		if now.Before(e.NotBefore) || now.After(e.NotAfter) {
			continue
		}
		for _, t := range trusted {
			if bytes.Equal(e.RawIssuer, t.RawSubject) && e.CheckSignatureFrom(t) == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("CA %s: %w", DNOf(added), ErrNotEndorsed)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
