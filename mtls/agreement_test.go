package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// What `cert lint` says of a certificate and what a port does with it come from the same
// rules (pki.CheckUsage, CheckValidity, CheckGroup), so they cannot drift apart: each
// certificate of the table goes through lint and through a live handshake, and lint's
// error reasons must be exactly the refusal the port logs, or none when it is accepted.
func TestLintAgreesWithHandshake(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	now := time.Now()
	clientEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	cases := []struct {
		name string
		kind pki.Kind
		leaf func() *pkitest.Leaf
	}{
		{"member", pki.KindMember, func() *pkitest.Leaf { return rca.Member("m") }},
		{"member without extended key usage", pki.KindMember, func() *pkitest.Leaf { return rca.Issue(pkitest.Spec{CN: "m", EKU: []x509.ExtKeyUsage{}}) }},
		{"member with serverAuth only", pki.KindMember, func() *pkitest.Leaf { return rca.ServerOnly("m") }},
		{"member with clientAuth only", pki.KindMember, func() *pkitest.Leaf { return rca.Issue(pkitest.Spec{CN: "m", EKU: clientEKU}) }},
		{"member without digitalSignature", pki.KindMember, func() *pkitest.Leaf { return rca.BadKeyUsage("m") }},
		{"member expired", pki.KindMember, func() *pkitest.Leaf { return rca.Expired("m") }},
		{"member not yet valid", pki.KindMember, func() *pkitest.Leaf { return rca.NotYetValid("m") }},
		{"member of another group", pki.KindMember, func() *pkitest.Leaf { return rca.Issue(pkitest.Spec{CN: "m", Group: "other"}) }},
		{"member of no group", pki.KindMember, func() *pkitest.Leaf { return rca.Issue(pkitest.Spec{CN: "m", NoGroup: true}) }},
		{"client", pki.KindClient, func() *pkitest.Leaf { return cca.Client("c") }},
		{"client with serverAuth only", pki.KindClient, func() *pkitest.Leaf {
			return cca.Issue(pkitest.Spec{CN: "c", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, URIs: []string{"urn:mirrorkv:access:readwrite"}, NoGroup: true})
		}},
		{"client expired", pki.KindClient, func() *pkitest.Leaf {
			return cca.Issue(pkitest.Spec{CN: "c", EKU: clientEKU, URIs: []string{"urn:mirrorkv:access:readwrite"}, NoGroup: true,
				NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
		}},
		{"client without digitalSignature", pki.KindClient, func() *pkitest.Leaf {
			return cca.Issue(pkitest.Spec{CN: "c", EKU: clientEKU, KeyUsage: x509.KeyUsageContentCommitment, URIs: []string{"urn:mirrorkv:access:readwrite"}, NoGroup: true})
		}},
	}
	member := rca.Member("acceptor")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leaf := tc.leaf()
			ca := rca
			if tc.kind == pki.KindClient {
				ca = cca
			}
			var linted reason.Code
			for _, f := range pki.Lint(pki.LintInput{Cert: leaf.CertPEM, CA: ca.CertPEM, Kind: tc.kind, Group: pki.DefaultGroup,
				SystemRoots: noSystemRoots}) {
				if f.Severity == pki.SeverityError {
					if linted != reason.OK {
						t.Fatalf("lint reports two errors (%v, then %v: %s); the table wants one fault per certificate", linted, f.Reason(), f.Message)
					}
					linted = f.Reason()
				}
			}
			log := newReasonLog()
			role := PortMember
			if tc.kind == pki.KindClient {
				role = PortClient
			}
			acc := sourceFor(t, role, member, ca.CertPath, "", log.logger())
			wrap := acc.Listen
			if role == PortClient {
				wrap = acc.HTTPSListener
			}
			addr, accepted := listen(t, wrap)
			go func() { _ = rawDialALPN(t, addr, leaf, role) }()
			select {
			case c := <-accepted:
				c.Close()
				if linted != reason.OK {
					t.Fatalf("lint finds %v, but the %s port accepted the certificate", linted, role)
				}
			case got := <-log.ch:
				if got != linted {
					t.Fatalf("the %s port refused it with %v, lint says %v", role, got, linted)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the handshake neither passed nor was refused")
			}
		})
	}
}

// rawDialALPN dials the port as a peer presenting leaf would, trusting whatever answers.
func rawDialALPN(t testing.TB, addr string, leaf *pkitest.Leaf, role Port) error {
	proto := ALPNMember
	if role == PortClient {
		proto = ALPNHTTP
	}
	return rawDial(t, addr, leaf, func(c *tls.Config) { c.NextProtos = []string{proto} })
}
