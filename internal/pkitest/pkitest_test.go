package pkitest

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"testing"
	"time"
)

func TestCA_Issue(t *testing.T) {
	ca := NewCA(t, "test-ca")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	verify := func(l *Leaf) error {
		_, err := l.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	now := time.Now()
	cases := []struct {
		name   string
		leaf   *Leaf
		check  func(c *x509.Certificate) bool
		verify bool // chains to the CA now
	}{
		{"member", ca.Member("m"), func(c *x509.Certificate) bool {
			return slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) && c.KeyUsage == x509.KeyUsageDigitalSignature
		}, true},
		{"client", ca.Client("c"), func(c *x509.Certificate) bool {
			return slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
		}, true},
		{"server only", ca.ServerOnly("s"), func(c *x509.Certificate) bool {
			return slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
		}, true},
		{"ed25519", ca.Issue(Spec{CN: "e", Key: Ed25519}), func(c *x509.Certificate) bool { _, ok := c.PublicKey.(ed25519.PublicKey); return ok }, true},
		{"rsa", ca.Issue(Spec{CN: "r", Key: RSA}), func(c *x509.Certificate) bool {
			k, ok := c.PublicKey.(*rsa.PublicKey)
			return ok && k.N.BitLen() == 2048 && c.KeyUsage&x509.KeyUsageKeyEncipherment != 0
		}, true},
		{"no extensions", ca.Issue(Spec{CN: "n", NoExtensions: true}), func(c *x509.Certificate) bool {
			return len(c.ExtKeyUsage) == 0 && c.KeyUsage == 0 && len(c.IPAddresses) == 0 && len(c.SubjectKeyId) == 0
		}, true},
		{"expired", ca.Expired("x"), func(c *x509.Certificate) bool { return c.NotAfter.Before(now) }, false},
		{"not yet valid", ca.NotYetValid("y"), func(c *x509.Certificate) bool { return c.NotBefore.After(now) }, false},
		{"bad key usage", ca.BadKeyUsage("k"), func(c *x509.Certificate) bool { return c.KeyUsage&x509.KeyUsageDigitalSignature == 0 }, true},
		{"self-signed", SelfSigned(t, "lone"), func(c *x509.Certificate) bool { return c.Issuer.CommonName == "lone" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.check(tc.leaf.Cert) {
				t.Errorf("certificate lacks its defining property: %+v", tc.leaf.Cert)
			}
			if err := verify(tc.leaf); (err == nil) != tc.verify {
				t.Errorf("verify = %v, want success %v", err, tc.verify)
			}
			if _, err := tls.LoadX509KeyPair(tc.leaf.CertPath, tc.leaf.KeyPath); err != nil {
				t.Errorf("files do not load as a key pair: %v", err)
			}
		})
	}
}

func TestCA_WrongKeyAndCRL(t *testing.T) {
	ca := NewCA(t, "test-ca")
	good := ca.Member("m")
	if _, err := tls.LoadX509KeyPair(good.CertPath, ca.WrongKey(good).KeyPath); err == nil {
		t.Error("the wrong key matches the certificate")
	}
	ca.Revoke(good)
	rl, err := x509.ParseRevocationList(ca.CRLDER())
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(ca.Cert); err != nil || len(rl.RevokedCertificateEntries) != 1 ||
		rl.RevokedCertificateEntries[0].SerialNumber.Cmp(good.Cert.SerialNumber) != 0 {
		t.Errorf("CRL does not list the revoked certificate, signed by the CA (%v)", err)
	}
	foreign, _ := x509.ParseRevocationList(pemBody(t, ca.ForeignCRL()))
	if foreign == nil || foreign.CheckSignatureFrom(ca.Cert) == nil {
		t.Error("the foreign CRL verifies against the CA")
	}
	path := Bundle(t, t.TempDir()+"/bundle.pem", ca, NewCA(t, "next"))
	if data, _ := os.ReadFile(path); len(data) <= len(ca.CertPEM) {
		t.Error("the bundle does not hold both CAs")
	}
}

func pemBody(t *testing.T, data []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}
