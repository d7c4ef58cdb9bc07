package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCAProfiles(t *testing.T) {
	r := pkiMust(t, "ca", "profiles")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("ca profiles: %d lines, want one per profile:\n%s", len(lines), r.stdout)
	}
	for i, name := range []string{"iris", "vast", "amlen", "mariadb", "manticore"} {
		if !strings.HasPrefix(lines[i], name+" ") {
			t.Errorf("line %d %q: want profile %s", i, lines[i], name)
		}
	}
}

func TestCAIssue_Profile(t *testing.T) {
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	pkiMust(t, "ca", "init", "--dir", ca, "--name", "Replication-Root-CA", "--insecure-no-passphrase")
	cases := []struct {
		name string
		args []string
		want []string // in the output
		keys []string // written 0600
	}{
		{"mariadb replica", []string{"--profile", "mariadb", "--name", "db2", "--primary", "10.0.0.1:3306", "--repl-user", "r2"},
			[]string{"ssl_cert = " + filepath.Join(root, "mariadb replica", "server-cert.pem"), "require_secure_transport = ON",
				"CREATE USER 'r2'@'%' REQUIRE SUBJECT '/CN=db2' AND ISSUER '/CN=Replication-Root-CA';",
				"MASTER_HOST='10.0.0.1',\n  MASTER_PORT=3306,", "MASTER_SSL_VERIFY_SERVER_CERT=1;"},
			[]string{"server-key.pem", "client-key.pem"}},
		{"mariadb primary", []string{"--profile", "mariadb", "--name", "db1"},
			[]string{"subject: /CN=db1", "issue the replica's certificate with --primary HOST:PORT"}, []string{"server-key.pem"}},
		{"amlen", []string{"--profile", "amlen", "--name", "ha1"},
			[]string{"ha_cert.pem", "HA_cert.pem", `"UseSecuredConnections": true`}, []string{"ha_key.pem"}},
		{"iris", []string{"--profile", "iris", "--name", "m1", "--key-type", "ecdsa-p256"},
			[]string{"Create Configurations for Mirror", "Private key type:                                                   ECDSA"}, []string{"m1.key"}},
		{"manticore", []string{"--profile", "manticore", "--name", "s1"}, []string{"listen = 9443:https"}, []string{"server-key.pem"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(root, tc.name)
			r := pkiMust(t, append([]string{"ca", "issue", "--dir", ca, "--out", out}, tc.args...)...)
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, k := range tc.keys {
				if fi, err := os.Stat(filepath.Join(out, k)); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v, want mode 0600", k, fi, err)
				}
			}
			if r := pkiRun(t, append([]string{"ca", "issue", "--dir", ca, "--out", out}, tc.args...)...); r.code == ExitOK || !strings.Contains(r.stderr, "--renew") {
				t.Errorf("second issue into the same --out: exit %d %s", r.code, r.stderr)
			}
		})
	}
}

func TestCAIssue_ProfileUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--profile", "oracle"},
		{"--profile", "mariadb", "--client"},
		{"--profile", "iris", "--group", "g"},
		{"--profile", "iris", "--primary", "db1:3306"},
		{"--primary", "db1:3306"},
	} {
		r := pkiRun(t, append([]string{"ca", "issue", "--dir", t.TempDir(), "--name", "x"}, args...)...)
		if r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, r.code, ExitUsage, r.stderr)
		}
	}
}

func TestCertLint_Profile(t *testing.T) {
	root := t.TempDir()
	ca, out := filepath.Join(root, "ca"), filepath.Join(root, "db")
	pkiMust(t, "ca", "init", "--dir", ca, "--name", "Replication-Root-CA", "--insecure-no-passphrase")
	pkiMust(t, "ca", "issue", "--dir", ca, "--name", "m1", "--out", root)
	pkiMust(t, "ca", "issue", "--dir", ca, "--profile", "mariadb", "--name", "db1", "--out", out)
	r := pkiMust(t, "cert", "lint", filepath.Join(out, "server-cert.pem"), "--ca", filepath.Join(out, "ca.pem"), "--profile", "mariadb")
	if !strings.Contains(r.stdout, "REQUIRE SUBJECT '/CN=db1' AND ISSUER '/CN=Replication-Root-CA'") || !strings.Contains(r.stdout, "ok for mariadb use") {
		t.Errorf("lint --profile mariadb:\n%s", r.stdout)
	}
	// A mirrorkv member certificate carries both usages: fine for IRIS by usage, but its file
	// name is not Amlen's.
	r = pkiRun(t, "cert", "lint", filepath.Join(root, "m1.crt"), "--ca", filepath.Join(ca, "ca.crt"), "--profile", "amlen", "--json")
	if r.code != ExitFailure || !strings.Contains(r.stdout, `"rule": "file-name"`) || !strings.Contains(r.stdout, `"kind": "amlen"`) {
		t.Errorf("lint --profile amlen of m1.crt: exit %d\n%s", r.code, r.stdout)
	}
	if r := pkiRun(t, "cert", "lint", filepath.Join(root, "m1.crt"), "--ca", filepath.Join(ca, "ca.crt"), "--profile", "iris", "--group", "g"); r.code != ExitUsage {
		t.Errorf("--profile with --group: exit %d", r.code)
	}
}

func TestCASign_Profile(t *testing.T) {
	root := t.TempDir()
	ca, vca, out := filepath.Join(root, "ca"), filepath.Join(root, "vast-ca"), filepath.Join(root, "signed")
	pkiMust(t, "ca", "init", "--dir", ca, "--name", "Replication-Root-CA", "--insecure-no-passphrase")
	pkiMust(t, "ca", "init", "--dir", vca, "--name", "Replication-Root-CA", "--insecure-no-passphrase")
	pkiMust(t, "cert", "request", "--name", "db3", "--out", root)
	csr := filepath.Join(root, "db3.csr")
	r := pkiMust(t, "ca", "sign", "--dir", ca, "--csr", csr, "--yes", "--profile", "mariadb", "--primary", "db1:3306", "--out", out)
	if !strings.Contains(r.stderr, "will sign a mariadb certificate (serverAuth, clientAuth)") || !strings.Contains(r.stdout, "REQUIRE SUBJECT '/CN=db3'") {
		t.Errorf("ca sign --profile mariadb:\n%s%s", r.stderr, r.stdout)
	}
	for _, f := range []string{"ca.pem", "server-cert.pem", "client-cert.pem"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "server-key.pem")); err == nil {
		t.Error("ca sign wrote a key file: the key stays where the request was made")
	}
	r = pkiRun(t, "ca", "sign", "--dir", vca, "--csr", csr, "--yes", "--profile", "vast", "--out", filepath.Join(root, "v"))
	if r.code != ExitFailure || !strings.Contains(r.stderr, "CN Replication-db3") {
		t.Errorf("ca sign --profile vast of CN=db3: exit %d %s", r.code, r.stderr)
	}
}
