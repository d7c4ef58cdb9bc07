package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Use is what a certificate does in a TLS handshake, which decides the usages it needs.
// These rules are the one home of what `cert lint` reports and what the member and client
// ports refuse: both call them, so the two cannot drift apart.
type Use int

// Uses.
const (
	// UseMember is a member certificate on the member port: it serves and dials, so it
	// needs serverAuth and clientAuth (or no extended key usage at all).
	UseMember Use = iota
	// UseClientAuth is a client certificate presented to the client port.
	UseClientAuth
	// UseServerAuth is a member certificate serving the client port.
	UseServerAuth
)

// UseOf is the use a certificate kind is checked for: a member certificate as a member, a
// client certificate as a client.
func UseOf(kind Kind) Use {
	if kind == KindClient {
		return UseClientAuth
	}
	return UseMember
}

// HasEKU reports whether c is fit for u by its extended key usage: u listed, or "any".
func HasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	return slices.Contains(c.ExtKeyUsage, u) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// noEKU reports a certificate without an extended key usage extension: every use is allowed.
func noEKU(c *x509.Certificate) bool {
	return len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0
}

// CheckValidity refuses a certificate outside its validity window at now, coded
// reason.CertNotYetValid or reason.CertExpired.
func CheckValidity(c *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return reason.Wrap(reason.CertNotYetValid, fmt.Errorf("certificate %q is valid only from %s", DNOf(c), c.NotBefore.UTC().Format(time.RFC3339)))
	case now.After(c.NotAfter):
		return reason.Wrap(reason.CertExpired, fmt.Errorf("certificate %q expired at %s", DNOf(c), c.NotAfter.UTC().Format(time.RFC3339)))
	}
	return nil
}

// CheckKeyUsage refuses a key usage extension without digitalSignature, coded
// reason.BadKeyUsage: every TLS 1.3 handshake signs with the leaf key.
func CheckKeyUsage(c *x509.Certificate) error {
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return reason.Wrap(reason.BadKeyUsage, fmt.Errorf("certificate %q lacks the digitalSignature key usage", DNOf(c)))
	}
	return nil
}

// CheckExtKeyUsage refuses a certificate whose extended key usage does not allow u. Go's own
// verification accepts a chain when ANY requested usage matches, so the leaf is checked
// here. A member certificate with clientAuth only is a client certificate
// (reason.ClientCertOnMemberPort); otherwise the missing usage names the reason
// (reason.MissingServerAuth, reason.MissingClientAuth).
func CheckExtKeyUsage(c *x509.Certificate, u Use) error {
	if noEKU(c) {
		return nil
	}
	server, client := HasEKU(c, x509.ExtKeyUsageServerAuth), HasEKU(c, x509.ExtKeyUsageClientAuth)
	dn := DNOf(c)
	switch {
	case u == UseClientAuth && !client, u == UseMember && server && !client:
		return reason.Wrap(reason.MissingClientAuth, fmt.Errorf("certificate %q lacks the clientAuth extended key usage", dn))
	case u == UseServerAuth && !server:
		return reason.Wrap(reason.MissingServerAuth, fmt.Errorf("certificate %q lacks the serverAuth extended key usage", dn))
	case u == UseMember && client && !server:
		return reason.Wrap(reason.ClientCertOnMemberPort, fmt.Errorf("certificate %q has clientAuth only: it is a client certificate, not a member's", dn))
	case u == UseMember && !server && !client:
		return reason.Wrap(reason.MissingServerAuth, fmt.Errorf("certificate %q lacks the serverAuth and clientAuth extended key usages", dn))
	}
	return nil
}

// CheckUsage is CheckKeyUsage, then CheckExtKeyUsage: everything a handshake for u needs of
// the leaf's usages.
func CheckUsage(c *x509.Certificate, u Use) error {
	if err := CheckKeyUsage(c); err != nil {
		return err
	}
	return CheckExtKeyUsage(c, u)
}

// CheckGroup refuses a member certificate not bound to group (GroupOf), coded
// reason.WrongGroup: one CA may serve several groups, and a member of one must never pass
// as a member of another.
func CheckGroup(c *x509.Certificate, group string) error {
	got, err := GroupOf(c)
	if err != nil {
		return reason.Wrap(reason.WrongGroup, err)
	}
	if got != group {
		return reason.Wrap(reason.WrongGroup, fmt.Errorf("certificate %q belongs to group %q, not %q", DNOf(c), got, group))
	}
	return nil
}

// CheckCRLSignature refuses a CRL that no CA of cas issued and signed, coded
// reason.CRLInvalid: a CRL nobody vouches for must not decide who is revoked. The member
// ports, the CLI and Go client (--crl) and `cert lint` all check CRLs with it.
func CheckCRLSignature(rl *x509.RevocationList, cas []*x509.Certificate) error {
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, rl.RawIssuer) && rl.CheckSignatureFrom(ca) == nil {
			return nil
		}
	}
	return reason.Wrap(reason.CRLInvalid, fmt.Errorf("CRL issued by %q is not signed by any CA of the bundle", rl.Issuer))
}

// CheckCRLNumber refuses a CRL whose number is lower than inForce, the number of the CRL of
// the same CA in force, coded reason.CRLOlder: an older CRL replayed over a newer one would
// lift every revocation made in between. nil inForce means no CRL of that CA is in force. A
// CRL without a number counts as number 0. The push route, every member applying a pushed
// CRL and the store's replicated record all order CRLs with it.
func CheckCRLNumber(rl *x509.RevocationList, inForce *big.Int) error {
	if inForce == nil {
		return nil
	}
	if n := CRLNumber(rl); n.Cmp(inForce) < 0 {
		return reason.Wrap(reason.CRLOlder, fmt.Errorf("CRL number %s of %q is lower than %s, the number in force", n, rl.Issuer, inForce))
	}
	return nil
}
