package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"slices"
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
		Ignored: []string{"URI urn:mirrorkv:access:admin", "email ops@example.com"}}
	if in.Subject != want.Subject || in.Key != want.Key || !slices.Equal(in.DNS, want.DNS) || !slices.Equal(in.IPs, want.IPs) || !slices.Equal(in.Ignored, want.Ignored) {
		t.Fatalf("InspectRequest = %+v, want %+v", in, want)
	}
	is, err := newTestCA(t, CAOptions{}).Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AccessOf(is.Cert); err == nil || len(is.Cert.EmailAddresses) != 0 {
		t.Fatalf("Sign copied what the request asked for: URIs %v, emails %v", is.Cert.URIs, is.Cert.EmailAddresses)
	}
}
