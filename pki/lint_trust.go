package pki

import (
	"crypto/x509"
	"fmt"
	"slices"

	"github.com/mirrorkv/mirrorkv/reason"
)

// checkPublicCA: a replication CA must trust only members. If the system trust store
// vouches for the CA (or the leaf), any certificate that public or corporate CA signs would
// pass as a member (the VAST seed).
func checkPublicCA(c *lintCtx) []Finding {
	get := c.in.SystemRoots
	if get == nil {
		get = x509.SystemCertPool
	}
	sys, err := get()
	if err != nil || sys == nil {
		return []Finding{{"public-ca", SeverityInfo, "system trust store unavailable; could not check that the CA is private", "", 0}}
	}
	opts := x509.VerifyOptions{Roots: sys, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	var out []Finding
	for _, ca := range c.cas {
		opts.CurrentTime = ca.NotBefore.Add(ca.NotAfter.Sub(ca.NotBefore) / 2)
		if _, err := ca.Verify(opts); err == nil {
			out = append(out, Finding{"public-ca", SeverityError, "CA " + DNOf(ca) + " is trusted by this system's trust store: it is a public or corporate CA, and every certificate it signs would be accepted as a member", "use a dedicated private CA made by 'mirrorkv ca init' for replication", 0})
		}
	}
	return out
}

// checkCRL: the CRL must be signed by a CA of the bundle and current, and must not list
// the leaf.
func checkCRL(c *lintCtx) []Finding {
	if c.in.CRL == nil {
		return nil
	}
	crl, err := ParseCRL(c.in.CRL)
	if err != nil {
		return []Finding{{"crl-unreadable", SeverityError, "CRL: " + err.Error(), "regenerate it with 'mirrorkv ca crl'", 0}}
	}
	var out []Finding
	if err := CheckCRLSignature(crl, c.cas); err != nil {
		out = append(out, shared("crl-signature", err, "", "use the crl.pem of the CA that issued the certificate ('mirrorkv ca crl')"))
	}
	if !crl.NextUpdate.IsZero() && c.now.After(crl.NextUpdate) {
		out = append(out, Finding{"crl-stale", SeverityError, "the CRL is past its next update (" + stamp(crl.NextUpdate) + "): members keep enforcing what it lists and report crl-expired, but a certificate revoked since is unknown to them", "run 'mirrorkv ca crl' on the CA host and copy crl.pem to every member", reason.CRLExpired})
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(c.leaf.SerialNumber) == 0 && slices.Equal(crl.RawIssuer, c.leaf.RawIssuer) {
			out = append(out, Finding{"revoked", SeverityError, fmt.Sprintf("the certificate (serial %s) was revoked on %s", serialHex(e.SerialNumber), stamp(e.RevocationTime)), "issue a new one with 'mirrorkv ca issue --renew'; a revoked certificate never comes back", 0})
		}
	}
	return out
}
