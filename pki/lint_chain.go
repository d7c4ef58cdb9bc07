package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// checkValidity checks the dates of the leaf and of every CA in the bundle.
func checkValidity(c *lintCtx) []Finding {
	out := validity(c.leaf, "", c.now)
	for _, ca := range c.cas {
		out = append(out, validity(ca, "ca-", c.now)...)
	}
	return out
}

func validity(cert *x509.Certificate, prefix string, now time.Time) []Finding {
	what, fix := "certificate "+DNOf(cert), "issue a new one with 'mirrorkv ca issue --renew' and put it in place"
	if prefix != "" {
		what, fix = "CA "+DNOf(cert), "rotate to a new CA: 'mirrorkv ca init' in a new directory, then a bundle of old and new CA (docs/certificates.md)"
	}
	// The verdict is CheckValidity's, the ports' own; the warning before it is lint's.
	switch code := reason.Of(CheckValidity(cert, now), reason.OK); {
	case code == reason.CertNotYetValid:
		return []Finding{{prefix + "not-yet-valid", SeverityError,
			fmt.Sprintf("%s is not valid before %s", what, stamp(cert.NotBefore)),
			"check the clock of this host and of the CA host, or wait", code}}
	case code == reason.CertExpired:
		return []Finding{{prefix + "expired", SeverityError, fmt.Sprintf("%s expired on %s", what, stamp(cert.NotAfter)), fix, code}}
	case cert.NotAfter.Sub(now) < ExpiryWarning:
		return []Finding{{prefix + "expiring-soon", SeverityWarning,
			fmt.Sprintf("%s expires on %s, in %d days", what, stamp(cert.NotAfter), int(cert.NotAfter.Sub(now).Hours()/24)), fix, 0}}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// checkCABundle: every certificate in the bundle must be able to sign, by the same test Go
// applies (a v1 root without extensions still can).
func checkCABundle(c *lintCtx) []Finding {
	var out []Finding
	for _, ca := range c.cas {
		if (ca.BasicConstraintsValid && !ca.IsCA) || (ca.Version == 3 && !ca.BasicConstraintsValid) {
			out = append(out, Finding{"ca-bundle", SeverityError, "the CA bundle holds " + DNOf(ca) + ", which is not a CA certificate", "give the CA's ca.crt with --ca, not a member certificate", 0})
		}
	}
	return out
}

// verifyTime is a moment inside the leaf's validity, so that the chain check reports a bad
// signature apart from dates, which checkValidity reports.
func verifyTime(c *lintCtx) time.Time {
	switch {
	case c.now.Before(c.leaf.NotBefore):
		return c.leaf.NotBefore
	case c.now.After(c.leaf.NotAfter):
		return c.leaf.NotAfter
	}
	return c.now
}

// verify builds the leaf's chain to the given roots, the other certificates of the file and
// the non-root CAs of the bundle serving as intermediates.
func (c *lintCtx) verify(roots []*x509.Certificate) ([][]*x509.Certificate, error) {
	rootPool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, cert := range c.chain[1:] {
		inter.AddCert(cert)
	}
	return c.leaf.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: inter, CurrentTime: verifyTime(c),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
}

// checkSignedByCA: the leaf must chain to a CA of the bundle.
func checkSignedByCA(c *lintCtx) []Finding {
	if c.cas == nil || isWeakSignature(c.leaf.SignatureAlgorithm) {
		return nil // unreadable bundle and weak signatures are reported on their own
	}
	_, err := c.verify(c.cas)
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[x509.CertificateInvalidError](err); ok && e.Reason == x509.Expired {
		return nil // a CA out of date: checkValidity reports it
	}
	return []Finding{{"unknown-ca", SeverityError,
		fmt.Sprintf("not signed by a CA of the bundle (issuer %s): %s", dnFromRaw(c.leaf.RawIssuer), err.Error()),
		"issue it from the replication CA ('mirrorkv ca issue'), or give the CA that issued it with --ca", 0}}
}

// checkSubjectIsIssuer: a leaf named exactly as the CA that signed it looks self-signed:
// openssl (the peers of MariaDB, Manticore, Amlen) takes it for a root and refuses it,
// although Go verifies it. Issue and Sign refuse to make one (ErrSubjectIsCA).
func checkSubjectIsIssuer(c *lintCtx) []Finding {
	if c.leaf.IsCA || !isSelfSigned(c.leaf) {
		return nil
	}
	return []Finding{{"subject-is-issuer", SeverityError,
		"the certificate's subject " + DNOf(c.leaf) + " is its issuer's name: openssl takes it for self-signed and refuses it",
		"reissue it under a name other than the CA's ('mirrorkv ca issue --name')", 0}}
}

// checkIntermediate: a dedicated replication CA signs leaves directly; an intermediate
// means the CA also serves other purposes (the VAST seed).
func checkIntermediate(c *lintCtx) []Finding {
	var out []Finding
	for _, cert := range append(c.chain[1:], c.cas...) {
		if cert.IsCA && !isSelfSigned(cert) {
			out = append(out, Finding{"intermediate", SeverityWarning, "intermediate CA " + DNOf(cert) + " in the chain: a dedicated replication CA signs members directly", "use a single-tier CA made by 'mirrorkv ca init'", 0})
		}
	}
	return out
}

// checkKey: the key file must hold the leaf's private key.
func checkKey(c *lintCtx) []Finding {
	if c.in.Key == nil {
		return nil
	}
	key, err := ParsePrivateKey(c.in.Key, c.in.KeyPassphrase)
	if err != nil {
		return []Finding{{"key-unreadable", SeverityError, "key file: " + err.Error(),
			"give the .key file written together with the certificate", 0}}
	}
	if !matchesKey(c.leaf, key) {
		return []Finding{{"key-mismatch", SeverityError,
			"the key (" + keyDescription(key.Public()) + ") does not match the certificate (" + keyDescription(c.leaf.PublicKey) + ")",
			"use the key generated with this certificate, or issue a new pair", 0}}
	}
	return nil
}

// checkKeyFile: a key file others can read is a key others may hold.
func checkKeyFile(c *lintCtx) []Finding {
	if c.in.KeyFile == "" {
		return nil
	}
	if err := CheckKeyFileMode(c.in.KeyFile); err != nil {
		return []Finding{{"key-file-mode", SeverityError, err.Error(), "chmod 600 " + c.in.KeyFile, 0}}
	}
	return nil
}

func isWeakSignature(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return true
	}
	return false
}

// checkWeakCrypto: RSA under 2048 bits and SHA-1/MD5 signatures are refused by Go and by
// OpenSSL's default security level. A root's own self-signature is never checked, hence a
// warning there.
func checkWeakCrypto(c *lintCtx) []Finding {
	var out []Finding
	for _, cert := range append(c.chain, c.cas...) {
		if k, ok := cert.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
			out = append(out, Finding{"weak-key", SeverityError, fmt.Sprintf("%s has an RSA %d-bit key", DNOf(cert), k.N.BitLen()), "reissue it with a P-256 key (the default) or RSA of at least 2048 bits", 0})
		}
		if isWeakSignature(cert.SignatureAlgorithm) {
			sev := SeverityError
			if cert.IsCA && isSelfSigned(cert) {
				sev = SeverityWarning
			}
			out = append(out, Finding{"weak-signature", sev, fmt.Sprintf("%s is signed with %s", DNOf(cert), cert.SignatureAlgorithm), "reissue it with 'mirrorkv ca issue' (SHA-256 or Ed25519)", 0})
		}
	}
	return out
}
