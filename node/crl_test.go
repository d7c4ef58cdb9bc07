package node

import (
	"encoding/pem"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// A pushed CRL is for the port whose CA bundle signed it; one that neither CA signed, or
// that is older than the CRL in force, is refused with its reason.
func TestNode_CheckCRL(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	cfg := testMember(t, rca, cca, rca.Member("m1"))
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	older := rca.CRLDER()
	foreign, _ := pem.Decode(cca.ForeignCRL())
	for _, tc := range []struct {
		name string
		der  []byte
		port string
		want reason.Code
	}{
		{"replication CA", rca.CRLDER(), store.CRLPortMember, reason.OK},
		{"client CA", cca.CRLDER(), store.CRLPortClient, reason.OK},
		{"the client CA's name, another key", foreign.Bytes, "", reason.CRLUnknownSigner},
		{"another CA", pkitest.NewCA(t, "elsewhere").CRLDER(), "", reason.CRLUnknownSigner},
		{"garbage", []byte("not a CRL"), "", reason.CRLInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, err := n.checkCRL(tc.der)
			if port != tc.port || reason.Of(err, reason.OK) != tc.want {
				t.Fatalf("checkCRL = %q, %v; want %q with reason %s", port, err, tc.port, tc.want)
			}
		})
	}
	t.Run("older than the CRL in force", func(t *testing.T) {
		if err := n.memberSrc.SetGroupCRLs([][]byte{rca.CRLDER()}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.checkCRL(older); reason.Of(err, reason.OK) != reason.CRLOlder {
			t.Fatalf("checkCRL(an older CRL) = %v; want reason crl-older", err)
		}
	})
}
