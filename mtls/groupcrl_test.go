package mtls

import (
	"context"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// A CRL pushed to the group closes the live connections of what it revokes, and is put in
// force only when a CA of the port's bundle signed it and it is not older than the CRL in
// force; the CRL file and the group's CRLs combine, the newest per CA winning.
func TestSource_GroupCRL(t *testing.T) {
	ca, clientCA := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	dir := t.TempDir()
	bundle := pkitest.Bundle(t, filepath.Join(dir, "ca.pem"), ca)
	crlFile := pkitest.WriteFile(t, filepath.Join(dir, "crl.pem"), ca.CRLPEM()) // number 1
	server := sourceFor(t, PortMember, ca.Member("server"), bundle, crlFile, nil)
	peerLeaf := ca.Member("peer")
	peer := sourceFor(t, PortMember, peerLeaf, bundle, "", nil)
	addr := echoServer(t, server)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	live, err := peer.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial before the revocation: %v", err)
	}
	defer live.Close()
	if err := roundTrip(live); err != nil {
		t.Fatalf("round trip before the revocation: %v", err)
	}

	older := ca.CRLDER() // number 2, revokes nothing
	ca.Revoke(peerLeaf)
	newer := ca.CRLDER() // number 3, revokes the peer
	if err := server.SetGroupCRLs([][]byte{newer}); err != nil {
		t.Fatalf("SetGroupCRLs(a CRL of the bundle's CA) = %v", err)
	}
	_ = live.SetDeadline(time.Now().Add(5 * time.Second))
	if err := roundTrip(live); err == nil {
		t.Fatal("the revoked peer's live connection still carries data after the push")
	}
	if _, err := peer.Dial(ctx, addr); err == nil {
		t.Fatal("the revoked peer dialled again after the push")
	}

	foreign, _ := pem.Decode(ca.ForeignCRL())
	for _, tc := range []struct {
		name string
		der  []byte
		want reason.Code
	}{
		{"signed by another key under the CA's name", foreign.Bytes, reason.CRLUnknownSigner},
		{"the other port's CA", clientCA.CRLDER(), reason.CRLUnknownSigner},
		{"older than the CRL in force", older, reason.CRLOlder},
		{"garbage", []byte("not a CRL"), reason.CRLInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := reason.Of(server.CheckCRL(tc.der), reason.OK); got != tc.want {
				t.Fatalf("CheckCRL = %s, want %s", got, tc.want)
			}
			// A member applying it keeps what is in force: the peer stays revoked.
			if err := server.SetGroupCRLs([][]byte{tc.der}); reason.Of(err, reason.OK) != tc.want {
				t.Fatalf("SetGroupCRLs = %v, want reason %s", err, tc.want)
			}
			if _, err := peer.Dial(ctx, addr); err == nil {
				t.Fatal("the revoked peer got in after a refused CRL")
			}
		})
	}

	t.Run("same number again", func(t *testing.T) {
		if err := server.CheckCRL(newer); err != nil {
			t.Fatalf("CheckCRL(the CRL in force) = %v, want nil", err)
		}
	})
	t.Run("a newer CRL file wins", func(t *testing.T) {
		pkitest.WriteFile(t, crlFile, ca.CRLPEM()) // number 4
		if err := server.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := reason.Of(server.CheckCRL(newer), reason.OK); got != reason.CRLOlder {
			t.Fatalf("CheckCRL(the pushed CRL) after a newer file = %s, want crl-older", got)
		}
		if _, err := peer.Dial(ctx, addr); err == nil {
			t.Fatal("the revoked peer got in after the file reload")
		}
	})
	t.Run("an older CRL file keeps the pushed one", func(t *testing.T) {
		fresh := sourceFor(t, PortMember, ca.Member("fresh"), bundle, ca.WriteFile("old-crl.pem", pemCRL(older)), nil)
		if err := fresh.SetGroupCRLs([][]byte{newer}); err != nil {
			t.Fatalf("SetGroupCRLs at start = %v", err)
		}
		freshAddr := echoServer(t, fresh)
		if _, err := peer.Dial(ctx, freshAddr); err == nil {
			t.Fatal("a member whose CRL file is older than the group's let the revoked peer in")
		}
	})
}

func pemCRL(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}) }
