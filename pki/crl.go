package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// Revocation reasons (RFC 5280 section 5.3.1) accepted by Revoke.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonPrivilegeWithdrawn   = 9
)

// ParseReason reads a revocation reason by its RFC 5280 name; empty means unspecified.
func ParseReason(s string) (int, error) {
	for _, r := range []struct {
		name string
		code int
	}{
		{"", ReasonUnspecified}, {"unspecified", ReasonUnspecified},
		{"keyCompromise", ReasonKeyCompromise}, {"affiliationChanged", ReasonAffiliationChanged},
		{"superseded", ReasonSuperseded}, {"cessationOfOperation", ReasonCessationOfOperation},
		{"privilegeWithdrawn", ReasonPrivilegeWithdrawn},
	} {
		if s == r.name {
			return r.code, nil
		}
	}
	return 0, fmt.Errorf("reason %q: use unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn", s)
}

// Revoke records serial as revoked for reason. It does not write the CRL: call CRL next,
// then copy crl.pem to every member.
func (ca *CA) Revoke(serial *big.Int, reason int) error {
	unlock, err := ca.lock()
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := ca.loadIndex()
	if err != nil {
		return err
	}
	r := idx.find(serial)
	if r == nil {
		return fmt.Errorf("revoke %s: %w", serialHex(serial), ErrUnknownSerial)
	}
	if r.RevokedAt != nil {
		return fmt.Errorf("revoke %s (%s) on %s: %w", r.Serial, r.Subject, r.RevokedAt.Format(time.DateOnly), ErrAlreadyRevoked)
	}
	now := ca.clock.now().UTC().Truncate(time.Second)
	r.RevokedAt, r.Reason = &now, reason
	return ca.saveIndex(idx)
}

// CRL writes a new DIR/crl.pem valid for days (DefaultCRLDays when zero or less), numbered
// one above the last, listing every revoked certificate, and returns it as PEM.
func (ca *CA) CRL(days int) ([]byte, error) {
	if days <= 0 {
		days = DefaultCRLDays
	}
	unlock, err := ca.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := ca.loadIndex()
	if err != nil {
		return nil, err
	}
	idx.CRLNumber++
	crl, err := ca.makeCRL(idx, days)
	if err != nil {
		return nil, err
	}
	// The number is saved before the CRL so that it never repeats, even after a failure.
	if err := ca.saveIndex(idx); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(ca.path(CRLFile), crl, modePublic); err != nil {
		return nil, err
	}
	return crl, nil
}

func (ca *CA) makeCRL(idx *index, days int) ([]byte, error) {
	now := ca.clock.now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(idx.CRLNumber),
		ThisUpdate: now.Add(-backdate),
		NextUpdate: now.AddDate(0, 0, days),
	}
	for _, r := range idx.Certs {
		if r.RevokedAt == nil {
			continue
		}
		serial, err := ParseSerial(r.Serial)
		if err != nil {
			return nil, fmt.Errorf("CA index entry: %w", err)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: serial, RevocationTime: *r.RevokedAt, ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(ca.clock.rand(), tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// CRLIssuerID names the CA that issued rl: its subject and key identifier, hashed. Two CAs
// of one bundle (old and new during a rotation) may share a name, never a key, and each has
// its own sequence of CRL numbers, so CRLs are ordered per issuer ID.
func CRLIssuerID(rl *x509.RevocationList) string {
	h := sha256.New()
	h.Write(rl.RawIssuer)
	h.Write([]byte{0})
	h.Write(rl.AuthorityKeyId)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// CRLNumber is rl's CRL number; 0 for a CRL without one.
func CRLNumber(rl *x509.RevocationList) *big.Int {
	if rl.Number == nil {
		return new(big.Int)
	}
	return rl.Number
}
