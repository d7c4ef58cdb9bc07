package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Severity grades a lint finding. Any error makes 'mirrorkv cert lint' exit 1.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"   // mirrorkv (or the peer) will refuse it
	SeverityWarning Severity = "warning" // works, but fix it before it bites
	SeverityInfo    Severity = "info"    // worth knowing
)

// Finding is one problem found by Lint, with what to do about it.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
	// code is the reason of a finding made from a shared rule's refusal (pki.CheckUsage and
	// the others): the one the ports report for the same fault. Zero: Reason derives it.
	code reason.Code
}

// LintInput is what Lint checks: the contents of the files an operator is about to deploy.
type LintInput struct {
	Cert          []byte // certificate file, PEM (leaf first, then any chain) or DER
	CA            []byte // CA bundle the peers trust (may hold an old and a new CA)
	Key           []byte // optional: the private key file
	KeyFile       string // optional: where Key was read from, to check its mode
	KeyPassphrase []byte
	CRL           []byte // optional: the CRL, PEM or DER
	Kind          Kind
	Group         string    // optional: the group a member certificate must name (serve's --group)
	Now           time.Time // time.Now when zero
	// SystemRoots returns the host's trust store; x509.SystemCertPool when nil. A CA found
	// there is a public or corporate CA, which must not be a replication CA.
	SystemRoots func() (*x509.CertPool, error)
}

// ExpiryWarning is how close to its end a certificate draws a warning.
const ExpiryWarning = 30 * 24 * time.Hour

// lintCtx holds the parsed inputs shared by the rules.
type lintCtx struct {
	in    LintInput
	now   time.Time
	chain []*x509.Certificate // the certificate file, in file order
	leaf  *x509.Certificate
	cas   []*x509.Certificate // the CA bundle; nil when unreadable
}

// rule is one check; rules run in table order.
type rule struct {
	name  string
	check func(*lintCtx) []Finding
}

func lintRules() []rule {
	return []rule{
		{"bundle-order", checkBundleOrder},
		{"empty-cn", checkEmptyCN},
		{"ext-key-usage", checkExtKeyUsage},
		{"key-usage", checkKeyUsage},
		{"netscape-cert-type", checkNetscapeCertType},
		{"client-access", checkClientAccess},
		{"group", checkGroup},
		{"validity", checkValidity},
		{"ca-bundle", checkCABundle},
		{"unknown-ca", checkSignedByCA},
		{"subject-is-issuer", checkSubjectIsIssuer},
		{"intermediate", checkIntermediate},
		{"key", checkKey},
		{"key-file-mode", checkKeyFile},
		{"weak-crypto", checkWeakCrypto},
		{"public-ca", checkPublicCA},
		{"crl", checkCRL},
	}
}

// Lint checks a certificate file against the CA bundle (and optionally its key and the CRL)
// for use in role, and returns every finding, errors first in rule order.
func Lint(in LintInput) []Finding {
	c := &lintCtx{in: in, now: in.Now}
	if c.now.IsZero() {
		c.now = time.Now()
	}
	chain, err := ParseCertificates(in.Cert)
	if err != nil {
		return []Finding{{"cert-unreadable", SeverityError, "certificate file: " + err.Error(),
			"give the PEM certificate written by 'mirrorkv ca issue' (leaf first)", 0}}
	}
	c.chain, c.leaf = chain, chain[0]
	var out []Finding
	if c.cas, err = ParseCertificates(in.CA); err != nil {
		out = append(out, Finding{"ca-unreadable", SeverityError, "CA bundle: " + err.Error(), "give the ca.crt of the replication CA (--ca)", 0})
	}
	if f := checkNotLeaf(c); f != nil {
		return append(out, f...)
	}
	for _, r := range lintRules() {
		out = append(out, r.check(c)...)
	}
	return out
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

func checkNotLeaf(c *lintCtx) []Finding {
	for _, cert := range c.chain {
		if !cert.IsCA {
			return nil
		}
	}
	return []Finding{{"not-leaf", SeverityError, "the file holds only CA certificates (" + DNOf(c.leaf) + ")",
		"lint the member or client certificate; give the CA with --ca", 0}}
}

func checkBundleOrder(c *lintCtx) []Finding {
	if !c.leaf.IsCA {
		return nil
	}
	return []Finding{{"bundle-order", SeverityError,
		"the first certificate in the file is a CA (" + DNOf(c.leaf) + "); TLS sends the first one as the leaf",
		"put the member or client certificate first, then any intermediates", 0}}
}

func checkEmptyCN(c *lintCtx) []Finding {
	if c.leaf.Subject.CommonName != "" {
		return nil
	}
	return []Finding{{"empty-cn", SeverityError, "the subject has no CN (" + quoteDN(c.leaf) + ")",
		"issue it with 'mirrorkv ca issue --name NAME'; the CN names the member or client", 0}}
}

func quoteDN(cert *x509.Certificate) string {
	if dn := DNOf(cert); dn != "" {
		return "subject " + dn
	}
	return "empty subject"
}

// isSelfSigned reports whether cert names itself as issuer, as a root does.
func isSelfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject)
}

// matchesKey reports whether key is cert's private key.
func matchesKey(cert *x509.Certificate, key crypto.Signer) bool {
	return publicKeyEqual(cert.PublicKey, key.Public())
}
