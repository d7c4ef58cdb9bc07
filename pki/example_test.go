package pki_test

import (
	"crypto/x509"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mirrorkv/mirrorkv/pki"
)

func ExampleInitCA() {
	dir, err := os.MkdirTemp("", "ca")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Name: "Replication-Root-CA", Passphrase: []byte("correct horse battery staple")})
	if err != nil {
		log.Fatal(err)
	}
	c := ca.Certificate()
	fmt.Println(pki.DNOf(c), c.IsCA, c.MaxPathLenZero)
	// Output: CN=Replication-Root-CA true true
}

func ExampleCA_Issue() {
	dir, err := os.MkdirTemp("", "ca")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Unencrypted: true}) // a throwaway CA for the example
	if err != nil {
		log.Fatal(err)
	}
	member, err := ca.Issue(pki.IssueRequest{Name: "m1", DNS: []string{"m1.example"}})
	if err != nil {
		log.Fatal(err)
	}
	client, err := ca.Issue(pki.IssueRequest{Name: "alice", Kind: pki.KindClient, Access: pki.AccessReadOnly})
	if err != nil {
		log.Fatal(err)
	}
	access, _ := pki.AccessOf(client.Cert)
	fmt.Println(pki.Inspect(member.Cert, member.Cert.NotBefore).ExtKeyUsage, access)
	// Output: [serverAuth clientAuth] readonly
}

func ExampleCA_Sign() {
	dir, err := os.MkdirTemp("", "ca")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Unencrypted: true}) // a throwaway CA for the example
	if err != nil {
		log.Fatal(err)
	}
	// On the member: the key stays there, only the CSR travels.
	req, err := pki.NewRequest(pki.RequestOptions{Name: "m2"})
	if err != nil {
		log.Fatal(err)
	}
	// On the CA host.
	is, err := ca.Sign(req.CSRPEM, pki.SignOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pki.DNOf(is.Cert), is.Key == nil)
	// Output: CN=m2 true
}

func ExampleCanonicalDN() {
	for _, s := range []string{"CN=m1,O=Acme", "/O=Acme/CN=m1", "subject=O = Acme, CN = m1"} {
		dn, err := pki.CanonicalDN(s)
		fmt.Println(dn, err)
	}
	// Output:
	// CN=m1,O=Acme <nil>
	// CN=m1,O=Acme <nil>
	// CN=m1,O=Acme <nil>
}

func ExampleLint() {
	dir, err := os.MkdirTemp("", "ca")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Unencrypted: true}) // a throwaway CA for the example
	if err != nil {
		log.Fatal(err)
	}
	client, err := ca.Issue(pki.IssueRequest{Name: "alice", Kind: pki.KindClient})
	if err != nil {
		log.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca", pki.CACertFile))
	if err != nil {
		log.Fatal(err)
	}
	// A client certificate cannot serve as a member: it lacks serverAuth and names no group.
	in := pki.LintInput{Cert: client.CertPEM, CA: caPEM, Key: client.KeyPEM, Kind: pki.KindMember,
		// Tests and examples pass their own trust store; nil means the system's.
		SystemRoots: func() (*x509.CertPool, error) { return x509.NewCertPool(), nil }}
	for _, f := range pki.Lint(in) {
		fmt.Println(f.Severity, f.Rule)
	}
	// Output:
	// error ext-key-usage
	// error group
}

func ExampleCA_Revoke() {
	dir, err := os.MkdirTemp("", "ca")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Unencrypted: true}) // a throwaway CA for the example
	if err != nil {
		log.Fatal(err)
	}
	is, err := ca.Issue(pki.IssueRequest{Name: "m1"})
	if err != nil {
		log.Fatal(err)
	}
	if err := ca.Revoke(is.Cert.SerialNumber, pki.ReasonKeyCompromise); err != nil {
		log.Fatal(err)
	}
	crlPEM, err := ca.CRL(7) // also written to DIR/crl.pem, for every member
	if err != nil {
		log.Fatal(err)
	}
	crl, err := pki.ParseCRL(crlPEM)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(crl.Number, len(crl.RevokedCertificateEntries))
	// Output: 2 1
}
