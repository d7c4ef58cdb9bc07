package node

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

func newTestCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.InitCA(filepath.Join(t.TempDir(), name), pki.CAOptions{Name: name, Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNode_PushedTLS drives the member side of a CA rotation: trust pushes checked against
// the member's own certificate, a key made on the member and a certificate installed only
// for it, all of it kept in DIR/tls across a restart.
func TestNode_PushedTLS(t *testing.T) {
	oldCA, newCA, clients := newTestCA(t, "old"), newTestCA(t, "new"), newTestCA(t, "clients")
	is, err := oldCA.Issue(pki.IssueRequest{Name: "m1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Kind: pki.KindMember})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := pki.WriteIssued(t.TempDir(), is)
	if err != nil {
		t.Fatal(err)
	}
	caFile := func(ca *pki.CA, f string) string { return filepath.Join(ca.Dir(), f) }
	cfg := Config{Name: "m1", Dir: filepath.Join(t.TempDir(), "data"), MemberListen: freeAddr(t), ClientListen: freeAddr(t),
		MemberTLS: mtls.Config{CertFile: certFile, KeyFile: keyFile, CAFile: caFile(oldCA, pki.CACertFile), CRLFile: caFile(oldCA, pki.CRLFile)},
		ClientTLS: mtls.Config{CAFile: caFile(clients, pki.CACertFile), CRLFile: caFile(clients, pki.CRLFile)},
		Cluster:   cluster.Config{Bootstrap: true, ElectionTimeout: 300 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond}}
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if n != nil {
			n.Close()
		}
	}()
	both := slices.Concat(readFile(t, caFile(oldCA, pki.CACertFile)), readFile(t, caFile(newCA, pki.CACertFile)))
	bothCRL := slices.Concat(readFile(t, caFile(oldCA, pki.CRLFile)), readFile(t, caFile(newCA, pki.CRLFile)))
	newOnly, newCRL := readFile(t, caFile(newCA, pki.CACertFile)), readFile(t, caFile(newCA, pki.CRLFile))
	endorse := func(by, of *pki.CA) []byte {
		t.Helper()
		e, err := by.Endorse(of.Certificate())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	newByOld := endorse(oldCA, newCA)

	t.Run("a bundle without the CA of the served certificate is refused", func(t *testing.T) {
		err := n.SetTrust(wire.TLSPortMember, newOnly, newCRL, newByOld)
		if reason.Of(err, reason.OK) != reason.TrustRefused {
			t.Fatalf("SetTrust(new CA only) = %v, want trust-refused", err)
		}
		if fi, err := os.Lstat(n.tlsPath(fileMemberCA)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("DIR/tls/%s after a refused push: %v, %v; want the link to the flag's file", fileMemberCA, fi, err)
		}
	})
	t.Run("the client CA in the member bundle is refused", func(t *testing.T) {
		withClients := slices.Concat(readFile(t, caFile(oldCA, pki.CACertFile)), readFile(t, caFile(clients, pki.CACertFile)))
		crls := slices.Concat(readFile(t, caFile(oldCA, pki.CRLFile)), readFile(t, caFile(clients, pki.CRLFile)))
		if err := n.SetTrust(wire.TLSPortMember, withClients, crls, endorse(oldCA, clients)); reason.Of(err, reason.OK) != reason.TrustRefused {
			t.Fatalf("SetTrust(old + client CA) = %v, want trust-refused", err)
		}
	})
	t.Run("a bundle without a CRL is refused where the port checks one", func(t *testing.T) {
		if err := n.SetTrust(wire.TLSPortMember, both, nil, newByOld); reason.Of(err, reason.OK) != reason.BadTLSPush {
			t.Fatalf("SetTrust without CRL = %v, want bad-tls-push", err)
		}
	})
	t.Run("a CA is added only with an endorsement by a CA in force", func(t *testing.T) {
		impostor := newTestCA(t, "old") // the old CA's name, another key
		for name, endorsements := range map[string][]byte{
			"none":                     nil,
			"by a CA of the same name": endorse(impostor, newCA),
			"by the CA added itself":   endorse(newCA, newCA),
		} {
			if err := n.SetTrust(wire.TLSPortMember, both, bothCRL, endorsements); reason.Of(err, reason.OK) != reason.CANotEndorsed {
				t.Errorf("SetTrust(old + new), endorsed %s = %v, want ca-not-endorsed", name, err)
			}
		}
		if got := len(n.TLSInfo().MemberCAs); got != 1 {
			t.Fatalf("member CAs in force after the refusals: %d, want 1", got)
		}
	})
	t.Run("old and new trusted", func(t *testing.T) {
		if err := n.SetTrust(wire.TLSPortMember, both, bothCRL, newByOld); err != nil {
			t.Fatal(err)
		}
		if got := len(n.TLSInfo().MemberCAs); got != 2 {
			t.Fatalf("member CAs in force: %d, want 2", got)
		}
	})
	t.Run("no certificate without a pending key", func(t *testing.T) {
		other, _ := newCA.Issue(pki.IssueRequest{Name: "m1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Kind: pki.KindMember, Renew: true})
		if err := n.InstallCert(other.CertPEM); reason.Of(err, reason.OK) != reason.NoPendingKey {
			t.Fatalf("InstallCert without a CSR = %v, want no-pending-key", err)
		}
	})
	csr, err := n.NewKeyRequest()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a certificate for another key is refused", func(t *testing.T) {
		other, _ := newCA.Issue(pki.IssueRequest{Name: "m1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Kind: pki.KindMember, Renew: true})
		if err := n.InstallCert(other.CertPEM); reason.Of(err, reason.OK) != reason.PendingKeyMismatch {
			t.Fatalf("InstallCert(another key) = %v, want pending-key-mismatch", err)
		}
	})
	t.Run("the certificate for the pending key is installed", func(t *testing.T) {
		signed, err := newCA.Sign(csr, pki.SignOptions{Kind: pki.KindMember, Renew: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.InstallCert(signed.CertPEM); err != nil {
			t.Fatal(err)
		}
		info := n.TLSInfo()
		if info.Chain[0].Serial != signed.Cert.SerialNumber.Text(16) || info.DN != "CN=m1" || info.PendingKey {
			t.Fatalf("after install: %+v", info)
		}
		fi, err := os.Stat(n.tlsPath(fileKey))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("installed key: %v, %v; want mode 0600", fi, err)
		}
	})
	t.Run("withdrawing the old CA", func(t *testing.T) {
		if err := n.SetTrust(wire.TLSPortMember, newOnly, newCRL, nil); err != nil {
			t.Fatal(err)
		}
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Cluster.Bootstrap = false
	cfg.ClientListen = freeAddr(t) // Close without Run leaves the first one bound
	n, err = New(cfg, nil)
	if err != nil {
		t.Fatalf("restart with pushed material: %v", err)
	}
	info := n.TLSInfo()
	if len(info.MemberCAs) != 1 || info.MemberCAs[0].Subject != "CN=new" || !slices.Contains(info.Pushed, fileCert) {
		t.Fatalf("after restart: member CAs %+v, pushed %v; want the new CA alone, from DIR/tls", info.MemberCAs, info.Pushed)
	}
}

func TestKeyTypeOf(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.KeyECDSAP256, pki.KeyEd25519, pki.KeyRSA3072} {
		key, err := pki.GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyTypeOf(key.Public()); got != kt {
			t.Errorf("keyTypeOf(%s key) = %s", kt, got)
		}
	}
}
