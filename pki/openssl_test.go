package pki

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const opensslPath = "/usr/bin/openssl"

// openssl runs openssl in dir and returns its combined output; want says whether it must
// succeed. It reads dir/openssl.cnf when present and no host configuration otherwise, so
// that verdicts do not depend on the machine.
func openssl(t *testing.T, dir string, want bool, args ...string) string {
	t.Helper()
	cmd := exec.Command(opensslPath, args...)
	cmd.Dir = dir
	conf := filepath.Join(dir, "openssl.cnf")
	if _, err := os.Stat(conf); err != nil {
		conf = os.DevNull
	}
	cmd.Env = append(os.Environ(), "OPENSSL_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if (err == nil) != want {
		t.Fatalf("openssl %s: err=%v, want success=%v\n%s", strings.Join(args, " "), err, want, out)
	}
	return string(out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenSSL_AcceptsMirrorkv: what mirrorkv makes, openssl verifies and reads.
func TestOpenSSL_AcceptsMirrorkv(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pass"), "s3cret\n")
	ca, err := InitCA(filepath.Join(dir, "ca"), CAOptions{Name: "Replication-Root-CA", Passphrase: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(req IssueRequest) {
		is, err := ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := WriteIssued(dir, is); err != nil {
			t.Fatal(err)
		}
	}
	issue(IssueRequest{Name: "m1", IPs: nil, DNS: []string{"m1.example"}})
	issue(IssueRequest{Name: "m2", KeyType: KeyEd25519})
	issue(IssueRequest{Name: "alice", Kind: KindClient, Access: AccessAdmin})

	openssl(t, dir, true, "pkey", "-in", "ca/ca.key", "-passin", "file:pass", "-noout")
	openssl(t, dir, false, "pkey", "-in", "ca/ca.key", "-passin", "pass:wrong", "-noout")
	openssl(t, dir, true, "verify", "-CAfile", "ca/ca.crt", "-purpose", "sslserver", "m1.crt", "m2.crt")
	openssl(t, dir, true, "verify", "-CAfile", "ca/ca.crt", "-purpose", "sslclient", "m1.crt", "m2.crt", "alice.crt")
	openssl(t, dir, false, "verify", "-CAfile", "ca/ca.crt", "-purpose", "sslserver", "alice.crt")
	if out := openssl(t, dir, true, "crl", "-in", "ca/crl.pem", "-noout", "-CAfile", "ca/ca.crt"); !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl: %s", out)
	}

	certs, _ := ParseCertificates(readFile(t, filepath.Join(dir, "m1.crt")))
	if err := ca.Revoke(certs[0].SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.CRL(7); err != nil {
		t.Fatal(err)
	}
	crlArgs := []string{"verify", "-crl_check", "-CAfile", "ca/ca.crt", "-CRLfile", "ca/crl.pem"}
	if out := openssl(t, dir, false, append(crlArgs, "m1.crt")...); !strings.Contains(out, "revoked") {
		t.Fatalf("revoked m1 not refused as revoked: %s", out)
	}
	openssl(t, dir, true, append(crlArgs, "m2.crt", "alice.crt")...)
	if out := openssl(t, dir, true, "crl", "-in", "ca/crl.pem", "-noout", "-text", "-CAfile", "ca/ca.crt"); !strings.Contains(out, "Key Compromise") {
		t.Fatalf("CRL lacks the reason: %s", out)
	}
}

// TestOpenSSL_RequestAndSign: a CSR from mirrorkv satisfies openssl, and a CSR from openssl
// asking for codeSigning gets only what the CA decides.
func TestOpenSSL_RequestAndSign(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, CAOptions{Clock: Clock{}})
	req, err := NewRequest(RequestOptions{Name: "m1", DNS: []string{"m1.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteRequest(dir, req); err != nil {
		t.Fatal(err)
	}
	openssl(t, dir, true, "req", "-in", "m1.csr", "-noout", "-verify")

	openssl(t, dir, true, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "o.key", "-out", "o.csr", "-subj", "/O=Acme/CN=m9",
		"-addext", "extendedKeyUsage=codeSigning", "-addext", "subjectAltName=DNS:m9.example")
	is, err := ca.Sign(readFile(t, filepath.Join(dir, "o.csr")), SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if !slices.Equal(is.Cert.ExtKeyUsage, want) || !slices.Equal(is.Cert.DNSNames, []string{"m9.example"}) || DNOf(is.Cert) != "CN=m9,O=Acme" {
		t.Fatalf("signed: EKU %v DNS %v subject %s", is.Cert.ExtKeyUsage, is.Cert.DNSNames, DNOf(is.Cert))
	}
	key, err := ParsePrivateKey(readFile(t, filepath.Join(dir, "o.key")), nil)
	if err != nil || !matchesKey(is.Cert, key) {
		t.Fatalf("openssl key does not match: %v", err)
	}
}

// TestOpenSSL_DN: every way openssl prints a subject reads back as DNOf.
func TestOpenSSL_DN(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, true, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "k.pem", "-out", "c.pem", "-days", "1", "-subj", "/C=GB/O=Acme, Inc./OU=db+L=Leeds/CN=m1")
	certs, err := ParseCertificates(readFile(t, filepath.Join(dir, "c.pem")))
	if err != nil {
		t.Fatal(err)
	}
	want := DNOf(certs[0])
	if want != `CN=m1,L=Leeds+OU=db,O=Acme\, Inc.,C=GB` {
		t.Fatalf("DNOf = %s", want)
	}
	for _, nameopt := range []string{"oneline", "RFC2253", "compat"} {
		out := openssl(t, dir, true, "x509", "-in", "c.pem", "-noout", "-subject", "-nameopt", nameopt)
		got, err := CanonicalDN(strings.TrimSpace(out))
		if err != nil || got != want {
			t.Errorf("-nameopt %s: CanonicalDN(%q) = %q, %v; want %q", nameopt, out, got, err, want)
		}
	}
}
