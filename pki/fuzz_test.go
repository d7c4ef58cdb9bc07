package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/youmark/pkcs8"
)

// fuzzMaterial returns real files to seed the parsers: a CA, a member certificate and key,
// a CSR and a CRL.
func fuzzMaterial(f *testing.F) (caPEM, certPEM, keyPEM, csrPEM, crlPEM []byte) {
	ca := newTestCA(f, CAOptions{})
	is, err := ca.Issue(IssueRequest{Name: "m1"})
	if err != nil {
		f.Fatal(err)
	}
	req, err := NewRequest(RequestOptions{Name: "m2"})
	if err != nil {
		f.Fatal(err)
	}
	if err := ca.Revoke(is.Cert.SerialNumber, ReasonKeyCompromise); err != nil {
		f.Fatal(err)
	}
	crl, err := ca.CRL(1)
	if err != nil {
		f.Fatal(err)
	}
	return readFile(f, filepath.Join(ca.Dir(), CACertFile)), is.CertPEM, is.KeyPEM, req.CSRPEM, crl
}

// der returns the body of the first PEM block.
func der(p []byte) []byte {
	b, _ := pem.Decode(p)
	return b.Bytes
}

func FuzzParseCertificates(f *testing.F) {
	caPEM, certPEM, keyPEM, _, _ := fuzzMaterial(f)
	for _, s := range [][]byte{caPEM, certPEM, append(certPEM, caPEM...), der(certPEM), keyPEM, []byte("-----BEGIN CERTIFICATE-----\n")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertificates(b)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, c := range certs {
			_ = Inspect(c, t0)
			if dn, err := CanonicalDN(DNOf(c)); err == nil && dn != DNOf(c) {
				t.Fatalf("CanonicalDN(DNOf) = %q, want %q", dn, DNOf(c))
			}
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	_, certPEM, keyPEM, _, _ := fuzzMaterial(f)
	enc, err := MarshalPrivateKey(mustKey(f), []byte("pw"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{keyPEM, enc, certPEM, der(keyPEM), []byte("-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n")} {
		f.Add(s, []byte("pw"))
	}
	f.Fuzz(func(t *testing.T, b, pass []byte) {
		if k, err := ParsePrivateKey(b, pass); err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	_, certPEM, _, csrPEM, _ := fuzzMaterial(f)
	for _, s := range [][]byte{csrPEM, der(csrPEM), certPEM} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if csr, err := ParseCSR(b); err == nil && csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR with a bad signature")
		}
	})
}

func FuzzParseCRL(f *testing.F) {
	_, certPEM, _, _, crlPEM := fuzzMaterial(f)
	for _, s := range [][]byte{crlPEM, der(crlPEM), certPEM} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if crl, err := ParseCRL(b); err == nil && crl == nil {
			t.Fatal("no error and no CRL")
		}
	})
}

// FuzzLint feeds arbitrary certificate, key and CRL files to Lint, which must never panic
// and must report unreadable input as an error.
func FuzzLint(f *testing.F) {
	caPEM, certPEM, keyPEM, _, crlPEM := fuzzMaterial(f)
	f.Add(certPEM, keyPEM, crlPEM)
	f.Add(caPEM, certPEM, keyPEM)
	f.Add([]byte("x"), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, cert, key, crl []byte) {
		fs := Lint(LintInput{Cert: cert, CA: caPEM, Key: key, CRL: crl, Now: t0, SystemRoots: emptyRoots})
		if _, err := ParseCertificates(cert); err != nil && !HasErrors(fs) {
			t.Fatalf("unreadable certificate passed: %+v", fs)
		}
	})
}

func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"1f", "0x1F", "aa:bb", "", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSerial(s)
		if err != nil {
			return
		}
		if m, err := ParseSerial(serialHex(n)); err != nil || m.Cmp(n) != 0 {
			t.Fatalf("%q -> %s does not read back: %v", s, serialHex(n), err)
		}
	})
}

func TestParsePrivateKey_KDFCost(t *testing.T) {
	k := mustKey(t)
	for _, tc := range []struct {
		name string
		iter int
		ok   bool
	}{{"openssl default", 2048, true}, {"two billion", 2_000_000_000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := pkcs8.MarshalPrivateKey(k, []byte("pw"), &pkcs8.Opts{Cipher: pkcs8.AES256CBC,
				KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 8, IterationCount: 1, HMACHash: crypto.SHA256}})
			if err != nil {
				t.Fatal(err)
			}
			der = setIterations(t, der, tc.iter)
			_, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), []byte("pw"))
			if errors.Is(err, errKDFCost) == tc.ok {
				t.Fatalf("iterations %d: %v", tc.iter, err)
			}
		})
	}
}

// setIterations rewrites the PBKDF2 iteration count of an EncryptedPrivateKeyInfo.
func setIterations(t *testing.T, der []byte, n int) []byte {
	t.Helper()
	var info struct {
		Algorithm kdfAlgorithm
		Data      []byte
	}
	var pbes2 struct{ KDF, Cipher kdfAlgorithm }
	var params struct {
		Salt []byte
		Iter int
		PRF  asn1.RawValue
	}
	_, err1 := asn1.Unmarshal(der, &info)
	_, err2 := asn1.Unmarshal(info.Algorithm.Params.FullBytes, &pbes2)
	_, err3 := asn1.Unmarshal(pbes2.KDF.Params.FullBytes, &params)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	params.Iter = n
	b, err := asn1.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	pbes2.KDF.Params = asn1.RawValue{FullBytes: b}
	if b, err = asn1.Marshal(pbes2); err != nil {
		t.Fatal(err)
	}
	info.Algorithm.Params = asn1.RawValue{FullBytes: b}
	if der, err = asn1.Marshal(info); err != nil {
		t.Fatal(err)
	}
	return der
}

// FuzzAccessOf: AccessOf never panics, grants only a known access, and reads a role URI the
// same whatever the case of its ASCII letters.
func FuzzAccessOf(f *testing.F) {
	for _, s := range [][2]string{
		{"urn:mirrorkv:role:admin", ""}, {"URN:MirrorKV:ROLE:ReadOnly", ""}, {"urn:mirrorkv:role:readonly?x=1", ""},
		{"urn:mirrorkv:role:admin#x", ""}, {"urn:mirrorkv:role:admin", "urn:mirrorkv:role:readonly"},
		{"urn:mirrorkv:group:g1", "spiffe://x/y"}, {"urn:mirrorkv:role:", ""}, {"urn:mirrorkv:role:read%77rite", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		uris, ok := parseURIs(a, b)
		upper, okUpper := parseURIs(asciiUpper(a), asciiUpper(b))
		got, err := AccessOf(&x509.Certificate{URIs: uris})
		if err == nil && (got == "" || got != mustParseAccess(t, got)) {
			t.Fatalf("AccessOf(%q, %q) = %q, not a known access", a, b, got)
		}
		if !ok || !okUpper {
			return
		}
		gotUpper, errUpper := AccessOf(&x509.Certificate{URIs: upper})
		if got != gotUpper || (err == nil) != (errUpper == nil) {
			t.Fatalf("AccessOf(%q, %q) = %q, %v; upper case = %q, %v", a, b, got, err, gotUpper, errUpper)
		}
	})
}

// parseURIs parses the non-empty strings of ss; ok is false when one does not parse.
func parseURIs(ss ...string) ([]*url.URL, bool) {
	var out []*url.URL
	for _, s := range ss {
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, false
		}
		out = append(out, u)
	}
	return out, true
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func mustParseAccess(t *testing.T, a Access) Access {
	t.Helper()
	got, err := ParseAccess(string(a))
	if err != nil {
		t.Fatalf("ParseAccess(%q): %v", a, err)
	}
	return got
}
