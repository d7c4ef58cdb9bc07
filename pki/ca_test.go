package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInitCA(t *testing.T) {
	ca := newTestCA(t, CAOptions{Name: "Replication-Root-CA", Days: 100})
	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA=%v MaxPathLen=%d zero=%v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if len(c.SubjectKeyId) != 20 || !bytes.Equal(c.SubjectKeyId, c.AuthorityKeyId) {
		t.Errorf("SKID %x AKID %x", c.SubjectKeyId, c.AuthorityKeyId)
	}
	if DNOf(c) != "CN=Replication-Root-CA" || !c.NotAfter.Equal(t0.AddDate(0, 0, 100)) || !c.NotBefore.Equal(t0.Add(-backdate)) {
		t.Errorf("subject %q validity %v..%v", DNOf(c), c.NotBefore, c.NotAfter)
	}
	wantModes := map[string]fs.FileMode{CAKeyFile: 0o600, IndexFile: 0o600, CACertFile: 0o644, CRLFile: 0o644}
	for f, mode := range wantModes {
		st, err := os.Stat(filepath.Join(ca.Dir(), f))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", f, err, st.Mode().Perm(), mode)
		}
	}
	crl, err := ParseCRL(readFile(t, filepath.Join(ca.Dir(), CRLFile)))
	if err != nil || crl.CheckSignatureFrom(c) != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("initial CRL: %v", err)
	}
	ents, _ := os.ReadDir(ca.Dir())
	if len(ents) != len(wantModes) {
		t.Errorf("CA directory holds %d entries, want %d (no temp files)", len(ents), len(wantModes))
	}
}

func TestInitCA_KeyTypes(t *testing.T) {
	for _, tc := range []struct {
		kt   KeyType
		want func(any) bool
	}{
		{KeyEd25519, func(k any) bool { _, ok := k.(ed25519.PublicKey); return ok }},
		{KeyRSA3072, func(k any) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 3072 }},
	} {
		t.Run(string(tc.kt), func(t *testing.T) {
			ca := newTestCA(t, CAOptions{KeyType: tc.kt})
			if !tc.want(ca.Certificate().PublicKey) {
				t.Fatalf("public key %T", ca.Certificate().PublicKey)
			}
			is, err := ca.Issue(IssueRequest{Name: "m1"})
			if err != nil || is.Cert.CheckSignatureFrom(ca.Certificate()) != nil {
				t.Fatalf("issue with %s CA: %v", tc.kt, err)
			}
		})
	}
}

func TestInitCA_RefusesExisting(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	before := readFile(t, filepath.Join(ca.Dir(), CAKeyFile))
	if _, err := InitCA(ca.Dir(), CAOptions{}); !errors.Is(err, ErrCAExists) {
		t.Fatalf("second InitCA: %v, want ErrCAExists", err)
	}
	if !bytes.Equal(before, readFile(t, filepath.Join(ca.Dir(), CAKeyFile))) {
		t.Fatal("ca.key changed")
	}
}

func TestOpenCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := InitCA(dir, CAOptions{Passphrase: []byte("s3cret")}); err != nil {
		t.Fatal(err)
	}
	garbage := t.TempDir()
	os.WriteFile(filepath.Join(garbage, CACertFile), []byte("not a cert"), 0o644)
	os.WriteFile(filepath.Join(garbage, IndexFile), []byte("{}"), 0o600)
	for _, tc := range []struct {
		name, dir string
		pass      string
		err       error
	}{
		{"right passphrase", dir, "s3cret", nil},
		{"wrong passphrase", dir, "nope", ErrPassphrase},
		{"missing passphrase", dir, "", ErrPassphrase},
		{"empty directory", t.TempDir(), "", ErrNotCA},
		{"missing directory", filepath.Join(dir, "nope"), "", ErrNotCA},
		{"certificate that is not one", garbage, "", ErrNoCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenCA(tc.dir, []byte(tc.pass))
			if !errors.Is(err, tc.err) {
				t.Fatalf("OpenCA: %v, want %v", err, tc.err)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := newTestCA(t, CAOptions{Days: 200})
	for _, tc := range []struct {
		name     string
		req      IssueRequest
		eku      []x509.ExtKeyUsage
		ku       x509.KeyUsage
		uris     []string
		lifetime time.Duration
	}{
		{"member", IssueRequest{Name: "m1", Days: 30}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature, []string{"urn:mirrorkv:group:mirrorkv"}, 30 * 24 * time.Hour},
		{"member of a named group", IssueRequest{Name: "m3", Group: "blue-1"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature, []string{"urn:mirrorkv:group:blue-1"}, 200 * 24 * time.Hour},
		{"RSA member", IssueRequest{Name: "m2", KeyType: KeyRSA3072}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, []string{"urn:mirrorkv:group:mirrorkv"}, 200 * 24 * time.Hour},
		{"client default role", IssueRequest{Name: "c1", Kind: KindClient}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature, []string{"urn:mirrorkv:access:readwrite"}, 200 * 24 * time.Hour},
		{"admin client", IssueRequest{Name: "c2", Kind: KindClient, Access: AccessAdmin}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature, []string{"urn:mirrorkv:access:admin"}, 200 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is, err := ca.Issue(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			c := is.Cert
			var uris []string
			for _, u := range c.URIs {
				uris = append(uris, u.String())
			}
			if !slices.Equal(c.ExtKeyUsage, tc.eku) || c.KeyUsage != tc.ku || !slices.Equal(uris, tc.uris) {
				t.Errorf("EKU %v KU %v URIs %v", c.ExtKeyUsage, c.KeyUsage, uris)
			}
			if got := c.NotAfter.Sub(t0); got != tc.lifetime && !c.NotAfter.Equal(ca.Certificate().NotAfter) {
				t.Errorf("lifetime %v, want %v", got, tc.lifetime)
			}
			if c.SerialNumber.BitLen() < 120 || len(c.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, ca.Certificate().SubjectKeyId) {
				t.Errorf("serial %v SKID %x AKID %x", c.SerialNumber, c.SubjectKeyId, c.AuthorityKeyId)
			}
			if !matchesKey(c, is.Key) || c.CheckSignatureFrom(ca.Certificate()) != nil || DNOf(c) != "CN="+tc.req.Name {
				t.Errorf("key, signature or subject wrong: %s", DNOf(c))
			}
		})
	}
}

func TestIssue_NeverOutlivesCA(t *testing.T) {
	ca := newTestCA(t, CAOptions{Days: 10})
	is, err := ca.Issue(IssueRequest{Name: "m1", Days: 365})
	if err != nil {
		t.Fatal(err)
	}
	if !is.Cert.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Fatalf("leaf NotAfter %v beyond CA %v", is.Cert.NotAfter, ca.Certificate().NotAfter)
	}
}

func TestIssue_UniqueSubject(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	first, err := ca.Issue(IssueRequest{Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(IssueRequest{Name: "m1"}); !errors.Is(err, ErrSubjectExists) {
		t.Fatalf("second issue: %v, want ErrSubjectExists", err)
	}
	if _, err := ca.Issue(IssueRequest{Name: "m1", Renew: true}); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if _, err := ca.Issue(IssueRequest{Name: "m2"}); err != nil {
		t.Fatalf("other subject: %v", err)
	}
	// Once every m1 certificate is revoked, a new one needs no --renew.
	idx, _ := ca.loadIndex()
	for _, r := range idx.Certs {
		if r.Subject == "CN=m1" {
			s, _ := ParseSerial(r.Serial)
			if err := ca.Revoke(s, ReasonSuperseded); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := ca.Issue(IssueRequest{Name: "m1"}); err != nil {
		t.Fatalf("issue after revoking %s: %v", serialHex(first.Cert.SerialNumber), err)
	}
}

func TestIssue_BadName(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	for _, name := range []string{"", "../x", "a/b", "-x", string(make([]byte, 65))} {
		if _, err := ca.Issue(IssueRequest{Name: name}); err == nil {
			t.Errorf("Issue(%q) succeeded", name)
		}
	}
}

func TestSign(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	req, err := NewRequest(RequestOptions{Name: "m1", DNS: []string{"m1.example"}})
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Sign(req.CSRPEM, SignOptions{Kind: KindClient, Access: AccessReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePrivateKey(req.KeyPEM, nil)
	if err != nil || !matchesKey(is.Cert, key) || is.Key != nil {
		t.Fatalf("signed certificate does not match the request key: %v", err)
	}
	if !slices.Equal(is.Cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) ||
		!slices.Equal(is.Cert.DNSNames, []string{"m1.example"}) || is.Cert.URIs[0].String() != "urn:mirrorkv:access:readonly" {
		t.Fatalf("EKU %v DNS %v URIs %v", is.Cert.ExtKeyUsage, is.Cert.DNSNames, is.Cert.URIs)
	}
	if _, err := ca.Sign([]byte("junk"), SignOptions{}); !errors.Is(err, ErrNoCSR) {
		t.Fatalf("junk CSR: %v", err)
	}
}

func TestRevokeAndCRL(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	is, err := ca.Issue(IssueRequest{Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(is.Cert.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(is.Cert.SerialNumber, 0); !errors.Is(err, ErrAlreadyRevoked) {
		t.Fatalf("second revoke: %v", err)
	}
	if err := ca.Revoke(is.Cert.SerialNumber.Lsh(is.Cert.SerialNumber, 1), 0); !errors.Is(err, ErrUnknownSerial) {
		t.Fatalf("unknown serial: %v", err)
	}
	for want := int64(2); want <= 3; want++ {
		b, err := ca.CRL(7)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := ParseCRL(b)
		if err != nil || crl.Number.Int64() != want || !crl.NextUpdate.Equal(t0.AddDate(0, 0, 7)) {
			t.Fatalf("CRL %v number %v next %v", err, crl.Number, crl.NextUpdate)
		}
		if !bytes.Equal(b, readFile(t, filepath.Join(ca.Dir(), CRLFile))) || len(crl.RevokedCertificateEntries) != 1 ||
			crl.RevokedCertificateEntries[0].ReasonCode != ReasonKeyCompromise {
			t.Fatalf("crl.pem not written or wrong entries: %+v", crl.RevokedCertificateEntries)
		}
	}
}

func TestWriteIssued(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	is, err := ca.Issue(IssueRequest{Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	certPath, keyPath, err := WriteIssued(out, is)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(keyPath); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	if !bytes.Equal(readFile(t, certPath), is.CertPEM) {
		t.Error("certificate content differs")
	}
	if _, _, err := WriteIssued(filepath.Join(out, "missing"), is); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 2 {
		t.Fatalf("%d entries in the output directory, want 2 (no temp files)", len(ents))
	}
}

func TestParseSerial(t *testing.T) {
	for in, ok := range map[string]bool{"0x1f": true, "1F": true, "1f:2a": true, "": false, "xyz": false, "0": false, "-1": false} {
		if _, err := ParseSerial(in); (err == nil) != ok {
			t.Errorf("ParseSerial(%q) error %v, want ok=%v", in, err, ok)
		}
	}
}

func TestIssue_Group(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	for _, tc := range []struct {
		name    string
		req     IssueRequest
		group   string // GroupOf the certificate; "" when it must name none
		wantErr bool
	}{
		{"default group", IssueRequest{Name: "m1"}, DefaultGroup, false},
		{"named group", IssueRequest{Name: "m2", Group: "g1"}, "g1", false},
		{"group that is not a name", IssueRequest{Name: "m3", Group: "a/b"}, "", true},
		{"group too long", IssueRequest{Name: "m4", Group: strings.Repeat("g", 65)}, "", true},
		{"client with a group", IssueRequest{Name: "c1", Kind: KindClient, Group: "g1"}, "", true},
		{"member with an access", IssueRequest{Name: "m5", Access: AccessAdmin}, "", true},
		{"client", IssueRequest{Name: "c2", Kind: KindClient}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is, err := ca.Issue(tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Issue: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			g, err := GroupOf(is.Cert)
			if tc.group == "" && !errors.Is(err, ErrGroup) || tc.group != "" && (g != tc.group || err != nil) {
				t.Fatalf("GroupOf = %q, %v; want %q", g, err, tc.group)
			}
		})
	}
}

func TestSign_Group(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	req, err := NewRequest(RequestOptions{Name: "m9"})
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Sign(req.CSRPEM, SignOptions{Group: "g2"})
	if err != nil {
		t.Fatal(err)
	}
	if g, err := GroupOf(is.Cert); g != "g2" || err != nil {
		t.Fatalf("GroupOf = %q, %v; want g2", g, err)
	}
}

func TestInitCA_Passphrase(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      CAOptions
		err       error // nil: created
		encrypted bool
	}{
		{"no passphrase", CAOptions{}, ErrNoPassphrase, false},
		{"passphrase", CAOptions{Passphrase: []byte("s3cret")}, nil, true},
		{"explicitly unencrypted", CAOptions{Unencrypted: true}, nil, false},
		{"both", CAOptions{Passphrase: []byte("s3cret"), Unencrypted: true}, errors.New("any"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			_, err := InitCA(dir, tc.opts)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("InitCA: %v", err)
			case tc.err != nil && err == nil:
				t.Fatal("InitCA succeeded, want an error")
			case tc.err == ErrNoPassphrase && !errors.Is(err, ErrNoPassphrase):
				t.Fatalf("InitCA: %v, want ErrNoPassphrase", err)
			}
			if err != nil {
				if exists(dir) {
					t.Fatalf("a refused InitCA left %s behind", dir)
				}
				return
			}
			key := readFile(t, filepath.Join(dir, CAKeyFile))
			if got := bytes.Contains(key, []byte("ENCRYPTED PRIVATE KEY")); got != tc.encrypted {
				t.Fatalf("ca.key encrypted = %v, want %v", got, tc.encrypted)
			}
		})
	}
}

func TestIssue_CAName(t *testing.T) {
	ca := newTestCA(t, CAOptions{Name: "Replication-Root-CA"})
	for _, name := range []string{"Replication-Root-CA", "replication-root-ca"} {
		if _, err := ca.Issue(IssueRequest{Name: name}); !errors.Is(err, ErrSubjectIsCA) {
			t.Errorf("Issue(%q): %v, want ErrSubjectIsCA", name, err)
		}
	}
	req, err := NewRequest(RequestOptions{Name: "Replication-Root-CA"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Sign(req.CSRPEM, SignOptions{}); !errors.Is(err, ErrSubjectIsCA) {
		t.Errorf("Sign of a request for the CA's name: %v, want ErrSubjectIsCA", err)
	}
	if _, err := ca.Issue(IssueRequest{Name: "Replication-Root-CA-m1"}); err != nil {
		t.Errorf("a name that only starts like the CA's: %v", err)
	}
}
