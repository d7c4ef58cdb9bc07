package pki

import (
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stockConf is the part of the openssl.cnf that ships with openssl which the seeds'
// commands rely on: 'req -x509' marks the certificate as a CA.
const stockConf = `[ req ]
distinguished_name = req_dn
x509_extensions = v3_ca
[ req_dn ]
[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical,CA:true
`

// mariadbConf holds the MariaDB seed's ca_ext and cert_ext sections, verbatim except for
// the entries that point at sections about URLs the test has no use for.
const mariadbConf = stockConf + `[ ca_ext ]
basicConstraints        = critical, CA:true
keyUsage                = critical, keyCertSign, cRLSign
subjectKeyIdentifier    = hash
authorityKeyIdentifier  = keyid:always
[ cert_ext ]
basicConstraints        = CA:FALSE
keyUsage                = critical, digitalSignature, keyEncipherment
extendedKeyUsage        = critical, serverAuth, clientAuth
subjectKeyIdentifier    = hash
authorityKeyIdentifier  = keyid:always
`

// extConf adds the sections the other cases sign with.
const extConf = stockConf + `[ web ]
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
[ iris_client ]
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
[ netscape_server ]
nsCertType = server
extendedKeyUsage = serverAuth, clientAuth
`

// seedLint lints dir/cert with its key against dir/ca as a member, now, with ca in the
// system trust store when public is set.
func seedLint(t *testing.T, dir, cert, key, ca string, public bool) []Finding {
	t.Helper()
	caPEM := readFile(t, filepath.Join(dir, ca))
	in := LintInput{Cert: readFile(t, filepath.Join(dir, cert)), Key: readFile(t, filepath.Join(dir, key)),
		CA: caPEM, Kind: KindMember, Now: time.Now(),
		SystemRoots: func() (*x509.CertPool, error) {
			p := x509.NewCertPool()
			if public {
				p.AppendCertsFromPEM(caPEM)
			}
			return p, nil
		}}
	// The seeds' recipes know nothing of mirrorkv's group URI: check that lint says so,
	// then leave that finding out so that the verdicts below are about usages.
	var out []Finding
	for _, f := range Lint(in) {
		if f.Rule == "group" {
			if f.Severity != SeverityError || !strings.Contains(f.Fix, "--group") {
				t.Errorf("group finding %+v, want an error whose fix names --group", f)
			}
			continue
		}
		out = append(out, f)
	}
	return out
}

func assertVerdict(t *testing.T, got []Finding, ok bool, want ...Finding) {
	t.Helper()
	if HasErrors(got) == ok {
		t.Errorf("HasErrors = %v, want %v: %+v", HasErrors(got), !ok, got)
	}
	for _, w := range want {
		if !hasFinding(got, w.Rule, w.Severity) {
			t.Errorf("want %s %s; got %+v", w.Severity, w.Rule, got)
		}
	}
}

// TestSeedRecipes_Lint: certificates made with the seeds' own openssl recipes get the
// verdicts the seeds' products would give them.
func TestSeedRecipes_Lint(t *testing.T) {
	t.Run("VAST without extensions", testVAST)
	t.Run("Manticore server certificate", testManticore)
	t.Run("MariaDB cert_ext", testMariaDB)
	t.Run("other extensions", testOtherExtensions)
}

func testVAST(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "openssl.cnf"), stockConf)
	run := func(args ...string) { openssl(t, dir, true, args...) }
	run("genrsa", "-aes256", "-passout", "pass:vastpass", "-out", "ca.key", "2048")
	run("req", "-new", "-x509", "-days", "3650", "-key", "ca.key", "-passin", "pass:vastpass", "-out", "ca.crt", "-subj", "/CN=Replication-Root-CA")
	run("genrsa", "-out", "vast1.key", "2048")
	run("req", "-new", "-key", "vast1.key", "-out", "vast1.csr", "-nodes", "-subj", "/CN=Replication-vast1")
	run("x509", "-req", "-CA", "ca.crt", "-CAkey", "ca.key", "-passin", "pass:vastpass", "-CAcreateserial",
		"-in", "vast1.csr", "-out", "vast1.crt", "-days", "1095")

	assertVerdict(t, seedLint(t, dir, "vast1.crt", "vast1.key", "ca.crt", false), true,
		Finding{Rule: "ext-key-usage", Severity: SeverityInfo})
	// The VAST seed's warning: a CA the system trusts would accept anyone it signed.
	assertVerdict(t, seedLint(t, dir, "vast1.crt", "vast1.key", "ca.crt", true), false,
		Finding{Rule: "public-ca", Severity: SeverityError})
	caKey := readFile(t, filepath.Join(dir, "ca.key"))
	if _, err := ParsePrivateKey(caKey, []byte("vastpass")); err != nil {
		t.Errorf("read the VAST CA key: %v", err)
	}
	if _, err := ParsePrivateKey(caKey, []byte("wrong")); !errors.Is(err, ErrPassphrase) {
		t.Errorf("wrong passphrase: %v, want ErrPassphrase", err)
	}
}

func testManticore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "openssl.cnf"), stockConf)
	run := func(args ...string) { openssl(t, dir, true, args...) }
	run("genrsa", "-out", "ca-key.pem", "2048")
	run("req", "-new", "-x509", "-nodes", "-days", "365", "-key", "ca-key.pem", "-out", "ca-cert.pem", "-subj", "/CN=Manticore CA")
	run("req", "-newkey", "rsa:2048", "-days", "365", "-nodes", "-keyout", "server-key.pem", "-out", "server-req.pem", "-subj", "/CN=server")
	run("rsa", "-in", "server-key.pem", "-out", "server-key.pem")
	run("x509", "-req", "-in", "server-req.pem", "-days", "365", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-set_serial", "01", "-out", "server-cert.pem")
	run("verify", "-CAfile", "ca-cert.pem", "server-cert.pem")
	assertVerdict(t, seedLint(t, dir, "server-cert.pem", "server-key.pem", "ca-cert.pem", false), true)
	// The CA's own certificate is not a server certificate.
	assertVerdict(t, seedLint(t, dir, "ca-cert.pem", "ca-key.pem", "ca-cert.pem", false), false,
		Finding{Rule: "not-leaf", Severity: SeverityError})
}

func testMariaDB(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "openssl.cnf"), mariadbConf)
	run := func(args ...string) { openssl(t, dir, true, args...) }
	run("req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1825",
		"-subj", "/O=example.net/CN=example.net Database Clients and Servers Certification Authority", "-extensions", "ca_ext")
	run("req", "-new", "-newkey", "rsa:3072", "-nodes", "-keyout", "aiken.key", "-out", "aiken.csr", "-subj", "/CN=aiken.example.net")
	run("x509", "-req", "-in", "aiken.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "368",
		"-extfile", "openssl.cnf", "-extensions", "cert_ext", "-out", "aiken.crt")
	got := seedLint(t, dir, "aiken.crt", "aiken.key", "ca.crt", false)
	assertVerdict(t, got, true)
	for _, f := range got {
		if f.Severity != SeverityInfo {
			t.Errorf("MariaDB's cert_ext is exactly right, yet: %+v", f)
		}
	}
}

func testOtherExtensions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "openssl.cnf"), extConf)
	run := func(args ...string) { openssl(t, dir, true, args...) }
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
		"-days", "30", "-subj", "/CN=Corp CA")
	sign := func(name, section string, extra ...string) {
		run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name+".key", "-out", name+".csr", "-subj", "/CN="+name)
		args := []string{"x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "20", "-out", name + ".crt"}
		if section != "" {
			args = append(args, "-extfile", "openssl.cnf", "-extensions", section)
		}
		run(append(args, extra...)...)
	}
	sign("web", "web")
	sign("iris", "iris_client")
	sign("ns", "netscape_server")
	sign("sha1", "", "-sha1")
	errs := func(rule string) Finding { return Finding{Rule: rule, Severity: SeverityError} }
	assertVerdict(t, seedLint(t, dir, "web.crt", "web.key", "ca.crt", false), false, errs("ext-key-usage"),
		Finding{Rule: "expiring-soon", Severity: SeverityWarning}, Finding{Rule: "ca-expiring-soon", Severity: SeverityWarning})
	assertVerdict(t, seedLint(t, dir, "iris.crt", "iris.key", "ca.crt", false), false, errs("ext-key-usage"))
	assertVerdict(t, seedLint(t, dir, "ns.crt", "ns.key", "ca.crt", false), false, errs("netscape-cert-type"))
	assertVerdict(t, seedLint(t, dir, "sha1.crt", "sha1.key", "ca.crt", false), false, errs("weak-signature"))
	assertVerdict(t, seedLint(t, dir, "web.crt", "iris.key", "ca.crt", false), false, errs("key-mismatch"))
}
