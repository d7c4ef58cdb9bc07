package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"slices"
	"testing"
)

// A renewal asks for the old certificate's subject (byte for byte, here one richer than
// CN=NAME, as an openssl CSR may carry), SANs and grant with a new key of the same type,
// and Sign gives them back only when told to grant the same.
func TestNewRenewal(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	key, err := GenerateKey(KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	subject := pkix.Name{CommonName: "m1", Organization: []string{"Example"}, OrganizationalUnit: []string{"ops"}}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject,
		DNSNames: []string{"m1.example"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, key)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ca.Sign(der, SignOptions{Group: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	old := first.Cert
	req, err := NewRenewal(old, "")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(req.CSRPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(csr.RawSubject, old.RawSubject) || !slices.Equal(csr.DNSNames, old.DNSNames) || !csr.IPAddresses[0].Equal(old.IPAddresses[0]) ||
		len(csr.URIs) != 1 || csr.URIs[0].String() != "urn:mirrorkv:group:prod" || KeyTypeOf(csr.PublicKey) != KeyEd25519 {
		t.Fatalf("renewal request: subject %s DNS %v IP %v URIs %v key %s", dnFromRaw(csr.RawSubject), csr.DNSNames, csr.IPAddresses, csr.URIs, KeyTypeOf(csr.PublicKey))
	}
	if _, err := ca.Sign(req.CSRPEM, SignOptions{Group: "prod"}); !errors.Is(err, ErrSubjectExists) {
		t.Fatalf("renewal signed without Renew: %v", err)
	}
	for _, other := range []SignOptions{{Renew: true}, {Group: "staging", Renew: true}, {Kind: KindClient, Renew: true}} {
		if _, err := ca.Sign(req.CSRPEM, other); !errors.Is(err, ErrGrantMismatch) {
			t.Fatalf("renewal of a prod member signed with %+v: %v, want ErrGrantMismatch", other, err)
		}
	}
	renewed, err := ca.Sign(req.CSRPEM, SignOptions{Group: "prod", Renew: true})
	if err != nil {
		t.Fatal(err)
	}
	if DNOf(renewed.Cert) != DNOf(old) || !bytes.Equal(renewed.Cert.RawSubject, old.RawSubject) ||
		bytes.Equal(renewed.Cert.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo) {
		t.Fatalf("renewed %s (key changed: %v), want the subject of %s with a new key", DNOf(renewed.Cert),
			!bytes.Equal(renewed.Cert.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo), DNOf(old))
	}
	if g, ok, err := GrantOf(renewed.Cert); err != nil || !ok || g != (Grant{Kind: KindMember, Group: "prod"}) {
		t.Fatalf("renewed grant %+v %v %v", g, ok, err)
	}

	if _, err := NewRenewal(ca.Certificate(), ""); err == nil {
		t.Fatal("a CA certificate was renewed as a leaf")
	}
	if _, err := NewRenewal(old, "dsa"); !errors.Is(err, ErrKeyType) {
		t.Fatalf("unknown key type: %v", err)
	}
}
