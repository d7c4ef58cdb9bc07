package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// pkiResult is the outcome of one command line.
type pkiResult struct {
	code           int
	stdout, stderr string
}

// pkiRun runs mirrorkv with args in dir-independent form and returns what it printed.
func pkiRun(t *testing.T, args ...string) pkiResult {
	t.Helper()
	return pkiRunIn(t, "", args...)
}

// pkiRunIn is pkiRun with stdin as standard input.
func pkiRunIn(t *testing.T, stdin string, args ...string) pkiResult {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(string) string { return "" }}
	code := run(e, args)
	return pkiResult{code, out.String(), errOut.String()}
}

// pkiMust runs args and fails the test unless they succeed.
func pkiMust(t *testing.T, args ...string) pkiResult {
	t.Helper()
	r := pkiRun(t, args...)
	if r.code != ExitOK {
		t.Fatalf("mirrorkv %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// newEncryptedCLICA makes a CA with a passphrase through the CLI; it returns the CA
// directory and the passphrase file. Each use of the key costs a memory-hard key derivation
// (seconds under the race detector), so only the tests of the passphrase path use it.
func newEncryptedCLICA(t *testing.T) (dir, pass string) {
	t.Helper()
	root := t.TempDir()
	dir, pass = filepath.Join(root, "ca"), filepath.Join(root, "pass")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pkiMust(t, "ca", "init", "--dir", dir, "--name", "Replication-Root-CA", "--passphrase-file", pass)
	return dir, pass
}

// newCLICA makes a CA whose key is not encrypted; pass is "", which --passphrase-file takes
// as no passphrase.
func newCLICA(t *testing.T) (dir, pass string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "ca")
	pkiMust(t, "ca", "init", "--dir", dir, "--name", "Replication-Root-CA", "--insecure-no-passphrase")
	return dir, ""
}

func readCRLNumber(t *testing.T, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, pki.CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := pki.ParseCRL(b)
	if err != nil {
		t.Fatal(err)
	}
	return crl.Number.Int64()
}

func TestCACmd_Lifecycle(t *testing.T) {
	dir, pass := newEncryptedCLICA(t)
	out := t.TempDir()
	r := pkiMust(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "m1", "--ip", "127.0.0.1", "--dns", "m1.example", "--out", out)
	if !strings.Contains(r.stdout, "issued member certificate CN=m1") {
		t.Errorf("issue output: %s", r.stdout)
	}
	if st, err := os.Stat(filepath.Join(out, "m1.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("m1.key: %v", err)
	}
	pkiMust(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "alice", "--client", "--role", "admin", "--out", out)

	r = pkiRun(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "m1", "--out", t.TempDir())
	if r.code != ExitFailure || !strings.Contains(r.stderr, "--renew") {
		t.Fatalf("second m1: exit %d %s", r.code, r.stderr)
	}
	r = pkiRun(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "m1", "--out", out)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "exists; add --renew") {
		t.Fatalf("existing files: exit %d %s", r.code, r.stderr)
	}
	pkiMust(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "m1", "--out", out, "--renew")

	if n := readCRLNumber(t, dir); n != 1 {
		t.Fatalf("initial CRL number %d", n)
	}
	pkiMust(t, "ca", "revoke", "--dir", dir, "--passphrase-file", pass, filepath.Join(out, "alice.crt"), "--reason", "keyCompromise")
	pkiMust(t, "ca", "crl", "--dir", dir, "--passphrase-file", pass, "--days", "7")
	if n := readCRLNumber(t, dir); n != 3 {
		t.Fatalf("CRL number after revoke and crl: %d, want 3", n)
	}
	r = pkiRun(t, "cert", "lint", filepath.Join(out, "alice.crt"), "--ca", filepath.Join(dir, "ca.crt"),
		"--crl", filepath.Join(dir, "crl.pem"), "--role", "client")
	if r.code != ExitFailure || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("lint of revoked alice: exit %d\n%s", r.code, r.stdout)
	}
}

func TestCACmd_RequestAndSign(t *testing.T) {
	dir, pass := newCLICA(t)
	member := t.TempDir()
	pkiMust(t, "cert", "request", "--name", "m2", "--ip", "10.0.0.2", "--out", member)
	if st, err := os.Stat(filepath.Join(member, "m2.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("m2.key: %v", err)
	}
	crt := filepath.Join(member, "m2.crt")
	pkiMust(t, "ca", "sign", "--dir", dir, "--passphrase-file", pass, "--csr", filepath.Join(member, "m2.csr"), "--out", crt, "--yes")
	r := pkiRun(t, "cert", "lint", crt, "--ca", filepath.Join(dir, "ca.crt"), "--key", filepath.Join(member, "m2.key"))
	if r.code != ExitOK || !strings.Contains(r.stdout, "ok for member use") {
		t.Fatalf("lint of signed m2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without --out the certificate goes to standard output.
	r = pkiMust(t, "ca", "sign", "--dir", dir, "--passphrase-file", pass, "--csr", filepath.Join(member, "m2.csr"), "--renew", "--yes")
	if !strings.HasPrefix(r.stdout, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("sign to stdout: %q", r.stdout)
	}
	// Revoke by serial, as cert inspect prints it.
	certs, err := pki.ParseCertificates([]byte(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	pkiMust(t, "ca", "revoke", "--dir", dir, "--passphrase-file", pass, "--serial", certs[0].SerialNumber.Text(16))
	r = pkiRun(t, "ca", "revoke", "--dir", dir, "--passphrase-file", pass, "--serial", certs[0].SerialNumber.Text(16))
	if r.code != ExitFailure || !strings.Contains(r.stderr, "already revoked") {
		t.Fatalf("second revoke: exit %d %s", r.code, r.stderr)
	}
}

func TestCACmd_Usage(t *testing.T) {
	dir, _ := newCLICA(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"init without --dir", []string{"ca", "init"}},
		{"init with bad key type", []string{"ca", "init", "--dir", t.TempDir(), "--key-type", "dsa"}},
		{"init with a passphrase and without", []string{"ca", "init", "--dir", t.TempDir(), "--passphrase-file", "p", "--insecure-no-passphrase"}},
		{"issue without --name", []string{"ca", "issue", "--dir", dir}},
		{"issue with a path as name", []string{"ca", "issue", "--dir", dir, "--name", "../m1"}},
		{"role without --client", []string{"ca", "issue", "--dir", dir, "--name", "m1", "--role", "admin"}},
		{"unknown role", []string{"ca", "issue", "--dir", dir, "--name", "m1", "--client", "--role", "root"}},
		{"access without --client", []string{"ca", "issue", "--dir", dir, "--name", "m1", "--access", "admin"}},
		{"unknown access", []string{"ca", "sign", "--dir", dir, "--csr", "x.csr", "--client", "--access", "root"}},
		{"client with --group", []string{"ca", "issue", "--dir", dir, "--name", "c1", "--client", "--group", "g1"}},
		{"group that is not a name", []string{"ca", "issue", "--dir", dir, "--name", "m1", "--group", "a/b"}},
		{"lint --group of a client", []string{"cert", "lint", "x.crt", "--ca", "ca.crt", "--role", "client", "--group", "g1"}},
		{"access and role disagree", []string{"ca", "issue", "--dir", dir, "--name", "m1", "--client", "--access", "admin", "--role", "readonly"}},
		{"bad --ip", []string{"ca", "issue", "--dir", dir, "--name", "m1", "--ip", "10.0.0"}},
		{"sign without --csr", []string{"ca", "sign", "--dir", dir}},
		{"revoke with file and --serial", []string{"ca", "revoke", "--dir", dir, "x.crt", "--serial", "1f"}},
		{"revoke with neither", []string{"ca", "revoke", "--dir", dir}},
		{"revoke with bad serial", []string{"ca", "revoke", "--dir", dir, "--serial", "zz"}},
		{"unknown reason", []string{"ca", "revoke", "--dir", dir, "--serial", "1f", "--reason", "bored"}},
		{"unknown flag", []string{"ca", "crl", "--dir", dir, "--nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := pkiRun(t, tc.args...); r.code != ExitUsage {
				t.Fatalf("exit %d, want %d\n%s", r.code, ExitUsage, r.stderr)
			}
		})
	}
	// The message names the flag as it was typed.
	for _, flag := range []string{"--role", "--access"} {
		if r := pkiRun(t, "ca", "issue", "--dir", dir, "--name", "m1", flag, "admin"); !strings.Contains(r.stderr, flag+" needs --client") {
			t.Errorf("%s without --client: %s", flag, r.stderr)
		}
	}
}

// TestCACmd_BadInput: each mistake gets one line that says what to do, exit 1, and
// leaves nothing behind.
func TestCACmd_BadInput(t *testing.T) {
	dir, pass := newEncryptedCLICA(t)
	tmp := t.TempDir()
	wrong, notKey, notCA := filepath.Join(tmp, "wrong"), filepath.Join(tmp, "notkey"), filepath.Join(tmp, "notca")
	os.WriteFile(wrong, []byte("guess\n"), 0o600)
	os.MkdirAll(notCA, 0o700)
	brokenCA := filepath.Join(tmp, "broken")
	os.CopyFS(brokenCA, os.DirFS(dir))
	os.WriteFile(filepath.Join(brokenCA, "ca.key"), []byte("this is not a key\n"), 0o600)
	os.WriteFile(notKey, []byte("hello"), 0o600)
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"directory that is not a CA", "not a mirrorkv CA directory", []string{"ca", "issue", "--dir", notCA, "--name", "m1"}},
		{"wrong passphrase", "wrong or missing passphrase", []string{"ca", "issue", "--dir", dir, "--passphrase-file", wrong, "--name", "m1"}},
		{"missing passphrase", "wrong or missing passphrase", []string{"ca", "crl", "--dir", dir}},
		{"missing passphrase file", "check --passphrase-file", []string{"ca", "crl", "--dir", dir, "--passphrase-file", filepath.Join(tmp, "none")}},
		{"CA key that is not a key", "no private key found", []string{"ca", "issue", "--dir", brokenCA, "--passphrase-file", pass, "--name", "m1"}},
		{"existing CA", "a CA already exists", []string{"ca", "init", "--dir", dir, "--insecure-no-passphrase"}},
		{"CA without a passphrase", "give --passphrase-file FILE, or --insecure-no-passphrase", []string{"ca", "init", "--dir", filepath.Join(tmp, "new")}},
		{"missing CSR", "check --csr", []string{"ca", "sign", "--dir", dir, "--passphrase-file", pass, "--csr", filepath.Join(tmp, "none.csr")}},
		{"CSR that is not one", "no certificate request found", []string{"ca", "sign", "--dir", dir, "--passphrase-file", pass, "--csr", notKey}},
		{"the CA's own name", "the CA's own name", []string{"ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "Replication-Root-CA"}},
		{"unknown serial", "issued no certificate", []string{"ca", "revoke", "--dir", dir, "--passphrase-file", pass, "--serial", "1f"}},
		{"missing certificate to revoke", "or give --serial", []string{"ca", "revoke", "--dir", dir, "--passphrase-file", pass, filepath.Join(tmp, "none.crt")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			r := pkiRun(t, append(tc.args, "--out", out)...)
			if tc.args[1] == "revoke" || tc.args[1] == "crl" || tc.args[1] == "init" {
				r = pkiRun(t, tc.args...)
			}
			if r.code != ExitFailure || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("exit %d, want 1 and one line with %q:\n%s", r.code, tc.want, r.stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("%s was created", out)
			}
		})
	}
}

// TestCACmd_Access: --access is the flag, --role its older spelling, and a client
// certificate always names its access.
func TestCACmd_Access(t *testing.T) {
	dir, pass := newCLICA(t)
	for _, tc := range []struct {
		name string
		args []string
		want pki.Access
	}{
		{"default", nil, pki.AccessReadWrite},
		{"access", []string{"--access", "readonly"}, pki.AccessReadOnly},
		{"role alias", []string{"--role", "admin"}, pki.AccessAdmin},
		{"both agreeing", []string{"--role", "ADMIN", "--access", "admin"}, pki.AccessAdmin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			pkiMust(t, append([]string{"ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "c", "--client", "--renew", "--out", out}, tc.args...)...)
			certs, err := readCertFile("certificate", filepath.Join(out, "c.crt"))
			if err != nil {
				t.Fatal(err)
			}
			if a, err := pki.AccessOf(certs[0]); a != tc.want || err != nil {
				t.Fatalf("AccessOf = %q, %v; want %q", a, err, tc.want)
			}
			if _, err := pki.GroupOf(certs[0]); err == nil {
				t.Fatalf("client certificate carries a group URI: %v", certs[0].URIs)
			}
		})
	}
}

// TestCACmd_Group: a member certificate names its group, inspect shows it and lint checks it.
func TestCACmd_Group(t *testing.T) {
	dir, pass := newCLICA(t)
	out := t.TempDir()
	ca := filepath.Join(dir, pki.CACertFile)
	r := pkiMust(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "m1", "--group", "g1", "--out", out)
	if !strings.Contains(r.stdout, "issued member certificate CN=m1 (group g1)") {
		t.Errorf("issue output: %s", r.stdout)
	}
	pkiMust(t, "cert", "request", "--name", "m2", "--out", out)
	pkiMust(t, "ca", "sign", "--dir", dir, "--passphrase-file", pass, "--csr", filepath.Join(out, "m2.csr"), "--out", filepath.Join(out, "m2.crt"), "--yes")
	for _, tc := range []struct {
		name, file, group string
	}{{"issued", "m1.crt", "g1"}, {"signed with the default group", "m2.crt", pki.DefaultGroup}} {
		t.Run(tc.name, func(t *testing.T) {
			r := pkiMust(t, "cert", "inspect", filepath.Join(out, tc.file))
			if want := "group:         " + tc.group + "\n"; !strings.Contains(r.stdout, want) {
				t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
			}
			pkiMust(t, "cert", "lint", filepath.Join(out, tc.file), "--ca", ca, "--group", tc.group)
			code, fs := lintJSON(t, filepath.Join(out, tc.file), "--ca", ca, "--group", "other")
			if f := findRule(fs, "group"); code != ExitFailure || f == nil || f.Reason != int(reason.WrongGroup) || !strings.Contains(f.Fix, "--group") {
				t.Fatalf("lint --group other: exit %d, %+v", code, fs)
			}
		})
	}
}

func TestCACmd_InitUnencrypted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	r := pkiMust(t, "ca", "init", "--dir", dir, "--insecure-no-passphrase")
	if !strings.Contains(r.stdout, "UNENCRYPTED") {
		t.Errorf("init output does not say the key is unencrypted:\n%s", r.stdout)
	}
	key, err := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	if err != nil || !strings.Contains(string(key), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("ca.key: %v\n%s", err, key)
	}
	// An unencrypted CA, new or from before, keeps opening without a passphrase.
	pkiMust(t, "ca", "issue", "--dir", dir, "--name", "m1", "--out", t.TempDir())
}

// TestCACmd_ConcurrentIssueAndRevoke: ca issue and ca revoke run at once on one CA directory
// lose no update of its index.
func TestCACmd_ConcurrentIssueAndRevoke(t *testing.T) {
	const n = 4
	dir, out := filepath.Join(t.TempDir(), "ca"), t.TempDir()
	pkiMust(t, "ca", "init", "--dir", dir, "--insecure-no-passphrase")
	for i := range n {
		pkiMust(t, "ca", "issue", "--dir", dir, "--name", fmt.Sprintf("old%d", i), "--out", out)
	}
	var wg sync.WaitGroup
	results := make(chan pkiResult, 2*n)
	for i := range n {
		wg.Go(func() {
			results <- pkiRun(t, "ca", "issue", "--dir", dir, "--name", fmt.Sprintf("new%d", i), "--out", out)
		})
		wg.Go(func() {
			results <- pkiRun(t, "ca", "revoke", "--dir", dir, filepath.Join(out, fmt.Sprintf("old%d.crt", i)))
		})
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.code != ExitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, pki.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Certs []struct {
			Subject   string
			RevokedAt *time.Time `json:"revoked_at"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, c := range idx.Certs {
		if c.RevokedAt != nil {
			revoked++
		}
	}
	if len(idx.Certs) != 2*n || revoked != n {
		t.Fatalf("index holds %d certificates, %d revoked; want %d and %d:\n%s", len(idx.Certs), revoked, 2*n, n, b)
	}
	if got := readCRLNumber(t, dir); got != 1+n {
		t.Fatalf("CRL number %d, want %d", got, 1+n)
	}
}

// TestCACmd_SignConfirm: ca sign shows the request and what it grants, then signs only on
// "y" or with --yes.
func TestCACmd_SignConfirm(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	pkiMust(t, "ca", "init", "--dir", dir, "--insecure-no-passphrase")
	member := t.TempDir()
	pkiMust(t, "cert", "request", "--name", "m2", "--ip", "10.0.0.2", "--dns", "m2.example", "--out", member)
	csr := filepath.Join(member, "m2.csr")
	for _, tc := range []struct {
		name, stdin string
		args        []string
		signed      bool
		stderr      string
	}{
		{"y", "y\n", nil, true, "sign? [y/N]"},
		{"YES", "YES\n", nil, true, "sign? [y/N]"},
		{"n", "n\n", nil, false, "not signed"},
		{"enter", "\n", nil, false, "not signed"},
		{"no answer", "", nil, false, "re-run with --yes after checking the SANs above"},
		{"--yes", "", []string{"--yes"}, true, "will sign a member certificate (serverAuth, clientAuth) for group g7"},
		{"client", "y\n", []string{"--client", "--access", "readonly"}, true, "will sign a client certificate (clientAuth) with access readonly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m2.crt")
			args := append([]string{"ca", "sign", "--dir", dir, "--csr", csr, "--out", out, "--renew", "--group", "g7"}, tc.args...)
			if slices.Contains(tc.args, "--client") {
				args = slices.DeleteFunc(args, func(a string) bool { return a == "--group" || a == "g7" })
			}
			r := pkiRunIn(t, tc.stdin, args...)
			for _, want := range []string{"subject:    CN=m2", "DNS:        m2.example", "IP:         10.0.0.2", "key:        ECDSA P-256", tc.stderr} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			_, err := os.Stat(out)
			if tc.signed != (r.code == ExitOK) || tc.signed != (err == nil) {
				t.Fatalf("exit %d, %s written: %v; want signed %v\n%s", r.code, out, err == nil, tc.signed, r.stderr)
			}
		})
	}
}

func TestCA_PassphraseForAKeyInTheClear(t *testing.T) {
	dir, _ := newCLICA(t)
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := pkiRun(t, "ca", "issue", "--dir", dir, "--passphrase-file", pass, "--name", "m1", "--out", t.TempDir())
	if r.code == ExitOK || !strings.Contains(r.stderr, "stored in the clear") || !strings.Contains(r.stderr, "drop --passphrase-file") {
		t.Fatalf("ca issue with a passphrase for a CA key in the clear: exit %d\n%s%s\nwant a refusal that says so and what to do", r.code, r.stdout, r.stderr)
	}
	pkiMust(t, "ca", "issue", "--dir", dir, "--name", "m1", "--out", t.TempDir())
}
