package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestInspectRequest: what ca sign shows of a request is what Sign copies, and the SANs it
// leaves out are named.
func TestInspectRequest(t *testing.T) {
	k := mustKey(t)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "m5"}, DNSNames: []string{"m5.example"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5")},
		URIs: []*url.URL{AccessAdmin.URI()}, EmailAddresses: []string{"ops@example.com"},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	in := InspectRequest(csr)
	want := RequestInfo{Subject: "CN=m5", DNS: []string{"m5.example"}, IPs: []string{"10.0.0.5"}, Key: "ECDSA P-256",
		Asks: "client with access admin", Ignored: []string{"email ops@example.com"}}
	if in.Subject != want.Subject || in.Key != want.Key || in.Asks != want.Asks || !slices.Equal(in.DNS, want.DNS) || !slices.Equal(in.IPs, want.IPs) || !slices.Equal(in.Ignored, want.Ignored) {
		t.Fatalf("InspectRequest = %+v, want %+v", in, want)
	}
	// The CA grants what it is told, never what the request asks for; a request that asks
	// for something else is refused rather than signed with a silent difference.
	ca := newTestCA(t, CAOptions{})
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	for _, opts := range []SignOptions{{}, {Kind: KindClient}, {Kind: KindClient, Access: AccessReadOnly}} {
		if _, err := ca.Sign(csrPEM, opts); !errors.Is(err, ErrGrantMismatch) || !strings.Contains(err.Error(), "--client --access admin") {
			t.Fatalf("Sign(%+v) of a request asking for admin = %v, want ErrGrantMismatch naming --client --access admin", opts, err)
		}
	}
	is, err := ca.Sign(csrPEM, SignOptions{Kind: KindClient, Access: AccessAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := AccessOf(is.Cert); err != nil || a != AccessAdmin || len(is.Cert.URIs) != 1 || len(is.Cert.EmailAddresses) != 0 {
		t.Fatalf("Sign copied what the request asked for: URIs %v, emails %v", is.Cert.URIs, is.Cert.EmailAddresses)
	}
}
