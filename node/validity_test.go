package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/reason"
)

// A member refuses to start on a certificate outside its validity window, and says which
// file, since or until when, and what to run.
func TestNew_RefusesCertificateOutsideItsValidity(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	now := time.Now()
	tests := []struct {
		name string
		leaf *pkitest.Leaf
		code reason.Code
		want []string
	}{
		{"expired", rca.Issue(pkitest.Spec{CN: "m1", NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: now.Add(-35 * 24 * time.Hour)}),
			reason.CertExpired, []string{"expired at ", "mirrorkv cert renew --cert", "mirrorkv ca issue --renew"}},
		{"not yet valid", rca.Issue(pkitest.Spec{CN: "m1", NotBefore: now.Add(2 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)}),
			reason.CertNotYetValid, []string{"is valid only from ", "check the clocks", "mirrorkv cert renew --cert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testMember(t, rca, cca, tt.leaf)
			n, err := New(cfg, nil)
			if err == nil {
				n.Close()
				t.Fatalf("New started with an %s certificate", tt.name)
			}
			ce, ok := errors.AsType[*mtls.CredentialError](err)
			if !ok || ce.Reason != tt.code || ce.File != tt.leaf.CertPath {
				t.Fatalf("New = %v; want a credential error %v naming %s", err, tt.code, tt.leaf.CertPath)
			}
			stamp := tt.leaf.Cert.NotAfter.UTC().Format(time.RFC3339)
			if tt.code == reason.CertNotYetValid {
				stamp = tt.leaf.Cert.NotBefore.UTC().Format(time.RFC3339)
			}
			for _, want := range append(tt.want, tt.leaf.CertPath, stamp) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New = %v\nwant it to say %q", err, want)
				}
			}
		})
	}
}

// The member certificate serves both ports: the status lists it once, and its reason is
// the member's TLS health.
func TestNode_TLSExpiries(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	now := time.Now()
	leaf := rca.Issue(pkitest.Spec{CN: "m1", NotBefore: now.Add(-355 * 24 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)})
	n, err := New(testMember(t, rca, cca, leaf), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	es := n.tlsExpiries()
	if len(es) != 1 || es[0].Material != string(mtls.MaterialLeaf) || es[0].Subject != "CN=m1,O=mirrorkv test" ||
		!es[0].At.Equal(leaf.Cert.NotAfter) || es[0].Reason.Code != int(reason.CertExpiring) {
		t.Fatalf("tlsExpiries = %+v, want the member certificate once, cert-expiring", es)
	}
	if got := n.tlsHealth(); got != reason.CertExpiring {
		t.Fatalf("tlsHealth = %v, want cert-expiring", got)
	}
}
