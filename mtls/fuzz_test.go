package mtls

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/pki"
)

// The seeds run in every `go test`; `go test -fuzz FuzzX ./mtls` explores further.

func FuzzParseCertificates(f *testing.F) {
	ca := pkitest.NewCA(f, "replication")
	leaf := ca.Member("m")
	f.Add(leaf.CertPEM)
	f.Add(leaf.Cert.Raw)
	f.Add(append(append([]byte{}, leaf.CertPEM...), ca.CertPEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add(leaf.KeyPEM)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, c := range certs {
			_ = dnOf(c)
		}
	})
}

func FuzzParseCRLs(f *testing.F) {
	ca := pkitest.NewCA(f, "replication")
	ca.Revoke(ca.Member("gone"))
	f.Add(ca.CRLPEM())
	f.Add(ca.CRLDER())
	f.Add(ca.ForeignCRL())
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		crls, err := ParseCRLs(data)
		if err == nil && len(crls) == 0 {
			t.Fatal("no error and no CRL")
		}
		for _, rl := range crls {
			_ = pki.CheckCRLSignature(rl, []*x509.Certificate{ca.Cert})
		}
	})
}

// FuzzParseMaterial feeds whole credential sets, as files on disk would hold them.
func FuzzParseMaterial(f *testing.F) {
	ca := pkitest.NewCA(f, "replication")
	leaf := ca.Member("m")
	f.Add(leaf.CertPEM, leaf.KeyPEM, ca.CertPEM, ca.CRLPEM())
	f.Add(leaf.CertPEM, ca.WrongKey(leaf).KeyPEM, ca.CertPEM, []byte{})
	f.Add(leaf.Cert.Raw, leaf.KeyPEM, ca.Cert.Raw, ca.CRLDER())
	f.Add(leaf.CertPEM, leaf.KeyPEM, leaf.CertPEM, ca.ForeignCRL())
	f.Fuzz(func(t *testing.T, cert, key, bundle, crl []byte) {
		cfg := Config{Port: PortMember, CertFile: "cert", KeyFile: "key", CAFile: "ca", CRLFile: "crl"}.withDefaults()
		m, err := parseMaterial(cfg, &files{cert: cert, key: key, ca: bundle, crl: crl}, time.Now())
		if err == nil && (m.leaf == nil || m.roots == nil) {
			t.Fatal("accepted material without a leaf or roots")
		}
	})
}

func FuzzSniff(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", "DELETE /v1/kv/a HTTP/1.1", "PATCH ", "\x16\x03\x01\x02\x00", "\x00\x01", "get /", "OPTIO", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k := sniff(b)
		switch {
		case len(b) > 0 && b[0] == recordTypeHandshake && k != kindTLS:
			t.Fatalf("sniff(%q) = %d, want TLS", b, k)
		case k == kindHTTP && (b[0] < 'A' || b[0] > 'Z'):
			t.Fatalf("sniff(%q) = HTTP, but it does not start with a method", b)
		}
	})
}

// FuzzCANames decodes the CA names a server sends in its certificate request.
func FuzzCANames(f *testing.F) {
	ca := pkitest.NewCA(f, "replication")
	f.Add(ca.Cert.RawSubject)
	f.Add([]byte{0x30, 0x00})
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: []byte{1}}))
	f.Fuzz(func(t *testing.T, der []byte) {
		if names := caNames([][]byte{der}); len(names) != 1 {
			t.Fatalf("caNames returned %d names for one input", len(names))
		}
	})
}
