package mtls

import (
	"crypto"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// A renewal replaces the key and the certificate one file after the other. In between the
// two do not match: the reload is refused as key-mismatch and the old pair stays in force
// (never the new key with the old certificate, nor the reverse); once both are in place the
// new pair loads. Either order works.
func TestSource_ReloadHalfReplacedPair(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	for _, keyFirst := range []bool{true, false} {
		name := map[bool]string{true: "key first", false: "certificate first"}[keyFirst]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			old := rca.Member("m1")
			cert := pkitest.WriteFile(t, filepath.Join(dir, "m1.crt"), old.CertPEM)
			key := pkitest.WriteFile(t, filepath.Join(dir, "m1.key"), old.KeyPEM)
			src := sourceFor(t, PortMember, &pkitest.Leaf{CertPath: cert, KeyPath: key}, rca.CertPath, "", nil)
			renewed := rca.Issue(pkitest.Spec{CN: "m1", NotAfter: time.Now().Add(48 * time.Hour)})

			first, second := [2]string{key, string(renewed.KeyPEM)}, [2]string{cert, string(renewed.CertPEM)}
			if !keyFirst {
				first, second = second, first
			}
			pkitest.WriteFile(t, first[0], []byte(first[1]))
			err := src.Reload()
			if ce, ok := errors.AsType[*CredentialError](err); !ok || ce.Reason != reason.KeyMismatch {
				t.Fatalf("reload of a half-replaced pair = %v, want refused as key-mismatch", err)
			}
			if m := src.mat.Load(); !m.leaf.Equal(old.Cert) || !keyMatches(m, old) {
				t.Fatal("a half-replaced pair replaced the material in force")
			}
			pkitest.WriteFile(t, second[0], []byte(second[1]))
			if err := src.Reload(); err != nil {
				t.Fatalf("reload of the whole new pair: %v", err)
			}
			if m := src.mat.Load(); !m.leaf.Equal(renewed.Cert) || !keyMatches(m, renewed) {
				t.Fatal("the renewed pair is not in force")
			}
		})
	}
}

func keyMatches(m *material, l *pkitest.Leaf) bool {
	signer, ok := m.cert.PrivateKey.(crypto.Signer)
	if !ok {
		return false
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(l.Key.Public())
}
