package cli

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// certFixture issues, straight through pki, a member and a client certificate into a temp
// dir and returns the paths by name: ca, m1.crt, m1.key, alice.crt, alice.key.
func certFixture(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{"ca": filepath.Join(dir, "ca", pki.CACertFile), "crl": filepath.Join(dir, "ca", pki.CRLFile)}
	for _, req := range []pki.IssueRequest{{Name: "m1", DNS: []string{"m1.example"}}, {Name: "alice", Kind: pki.KindClient}} {
		is, err := ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		c, k, err := pki.WriteIssued(dir, is)
		if err != nil {
			t.Fatal(err)
		}
		paths[req.Name+".crt"], paths[req.Name+".key"] = c, k
	}
	return paths
}

func TestCertInspect(t *testing.T) {
	p := certFixture(t)
	r := pkiMust(t, "cert", "inspect", p["m1.crt"])
	for _, want := range []string{"subject:       CN=m1", "issuer:        CN=mirrorkv replication CA", "DNS:           m1.example",
		"ext key usage: serverAuth, clientAuth", "(365 days left)", "sha256:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	m1, _ := os.ReadFile(p["m1.crt"])
	ca, _ := os.ReadFile(p["ca"])
	os.WriteFile(bundle, append(m1, ca...), 0o644)
	r = pkiMust(t, "cert", "inspect", bundle, "--json")
	var infos []pki.Info
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.stdout)
	}
	if len(infos) != 2 || infos[0].Subject != "CN=m1" || !infos[1].IsCA || infos[0].DaysLeft != 365 || len(infos[0].Fingerprint) != 95 {
		t.Fatalf("inspect --json: %+v", infos)
	}
}

func TestCertLint(t *testing.T) {
	p := certFixture(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"member as member", []string{p["m1.crt"], "--key", p["m1.key"], "--crl", p["crl"]}, ExitOK, "ok for member use"},
		{"client as client", []string{p["alice.crt"], "--kind", "client"}, ExitOK, "client access: readwrite"},
		{"client as member", []string{p["alice.crt"]}, ExitFailure, "error   ext-key-usage"},
		{"key of another certificate", []string{p["m1.crt"], "--key", p["alice.key"]}, ExitFailure, "key-mismatch"},
		{"key file that is a certificate", []string{p["m1.crt"], "--key", p["m1.crt"]}, ExitFailure, "no private key found"},
		{"CA given as the certificate", []string{p["ca"]}, ExitFailure, "not-leaf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := pkiRun(t, append([]string{"cert", "lint", "--ca", p["ca"]}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", r.code, tc.code, tc.stdout, r.stdout, r.stderr)
			}
		})
	}
}

func TestCertLint_JSON(t *testing.T) {
	p := certFixture(t)
	r := pkiRun(t, "cert", "lint", p["alice.crt"], "--ca", p["ca"], "--json")
	var got struct {
		OK       bool
		Kind     string
		Findings []struct {
			pki.Finding
			Reason int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("lint --json: %v\n%s", err, r.stdout)
	}
	if r.code != ExitFailure || got.OK || got.Kind != "member" || len(got.Findings) == 0 || got.Findings[0].Rule != "ext-key-usage" || got.Findings[0].Fix == "" || got.Findings[0].Reason != 108 {
		// 108: a client certificate where a member's is needed, as the member port says.
		t.Fatalf("exit %d, %+v", r.code, got)
	}
}

func TestCertCmd_BadInput(t *testing.T) {
	p := certFixture(t)
	missing := filepath.Join(t.TempDir(), "none.crt")
	for _, tc := range []struct {
		name, want string
		code       int
		args       []string
	}{
		{"inspect a missing file", "check the path", ExitFailure, []string{"cert", "inspect", missing}},
		{"inspect a key", "no certificate found", ExitFailure, []string{"cert", "inspect", p["m1.key"]}},
		{"lint with a missing CA", "check the path", ExitFailure, []string{"cert", "lint", p["m1.crt"], "--ca", missing}},
		{"lint without --ca", "--ca is required", ExitUsage, []string{"cert", "lint", p["m1.crt"]}},
		{"lint with an unknown role", "use member or client", ExitUsage, []string{"cert", "lint", p["m1.crt"], "--ca", p["ca"], "--role", "admin"}},
		{"inspect without a file", "accepts 1 arg", ExitUsage, []string{"cert", "inspect"}},
		{"request without --name", "--name is required", ExitUsage, []string{"cert", "request"}},
		{"request over existing files", "exists; remove it", ExitFailure, []string{"cert", "request", "--name", "m1", "--out", filepath.Dir(p["m1.key"])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := pkiRun(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr lacks %q:\n%s", r.code, tc.code, tc.want, r.stderr)
			}
			if tc.code == ExitFailure && strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("want one line on stderr:\n%s", r.stderr)
			}
		})
	}
}

// signLeaf signs tmpl with the fixture CA's key into dir/name.crt, for certificates that
// 'ca issue' would never make.
func signLeaf(t *testing.T, p map[string]string, name string, tmpl *x509.Certificate) string {
	t.Helper()
	caCerts, err := readCertFile("CA", p["ca"])
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(filepath.Dir(p["ca"]), pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 90)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCerts[0], key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lintJSON runs cert lint --json and returns the exit status and the findings.
func lintJSON(t *testing.T, args ...string) (int, []lintFindingJSON) {
	t.Helper()
	r := pkiRun(t, append([]string{"cert", "lint", "--json"}, args...)...)
	var got struct{ Findings []lintFindingJSON }
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("lint --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return r.code, got.Findings
}

type lintFindingJSON struct {
	pki.Finding
	Reason int
}

func findRule(fs []lintFindingJSON, rule string) *lintFindingJSON {
	for i := range fs {
		if fs[i].Rule == rule && fs[i].Severity == pki.SeverityError {
			return &fs[i]
		}
	}
	return nil
}

func TestCertLint_ClientWithoutAccess(t *testing.T) {
	p := certFixture(t)
	crt := signLeaf(t, p, "bob", &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature})
	code, fs := lintJSON(t, crt, "--ca", p["ca"], "--role", "client")
	f := findRule(fs, "client-access")
	if code != ExitFailure || f == nil || f.Reason != int(reason.NoAccess) || !strings.Contains(f.Fix, "--access") {
		t.Fatalf("exit %d, findings %+v; want a client-access error with reason %d and a fix naming --access", code, fs, reason.NoAccess)
	}
}

func TestCertLint_MemberWithoutGroup(t *testing.T) {
	p := certFixture(t)
	crt := signLeaf(t, p, "m9", &x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	code, fs := lintJSON(t, crt, "--ca", p["ca"])
	if f := findRule(fs, "group"); code != ExitFailure || f == nil || f.Reason != int(reason.WrongGroup) {
		t.Fatalf("exit %d, findings %+v; want a group error with reason %d", code, fs, reason.WrongGroup)
	}
}

func TestCertLint_KeyFileMode(t *testing.T) {
	p := certFixture(t)
	key, err := os.ReadFile(p["m1.key"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{{"0600", 0o600, true}, {"0640", 0o640, false}, {"0644", 0o644, false}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m1.key")
			if err := os.WriteFile(path, key, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			code, fs := lintJSON(t, p["m1.crt"], "--ca", p["ca"], "--key", path)
			f := findRule(fs, "key-file-mode")
			if tc.ok && (code != ExitOK || f != nil) {
				t.Fatalf("exit %d, findings %+v; want ok", code, fs)
			}
			if !tc.ok && (code != ExitFailure || f == nil || f.Reason != int(reason.KeyFileMode) || f.Fix != "chmod 600 "+path) {
				t.Fatalf("exit %d, findings %+v; want a key-file-mode error with reason %d", code, fs, reason.KeyFileMode)
			}
		})
	}
}
