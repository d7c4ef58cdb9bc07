package cli

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/pki"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := readCertFile("certificate", path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// signCommand is the 'ca sign' line cert renew printed, as arguments, with CADIR and the
// bare file names filled in.
func signCommand(t *testing.T, stdout, caDir, dir string) []string {
	t.Helper()
	const prefix = "1. on the CA host: mirrorkv "
	for line := range strings.Lines(stdout) {
		if _, cmd, ok := strings.Cut(line, prefix); ok {
			args := strings.Fields(cmd)
			for i, a := range args {
				switch {
				case a == "CADIR":
					args[i] = caDir
				case i > 0 && (args[i-1] == "--csr" || args[i-1] == "--out"):
					args[i] = filepath.Join(dir, a)
				}
			}
			return append(args, "--yes")
		}
	}
	t.Fatalf("cert renew printed no ca sign command:\n%s", stdout)
	return nil
}

// A renewal through the CSR path keeps what the old certificate said (DN, SANs, group or
// access) with a new key made where renew runs, and the result passes cert lint.
func TestCertRenew(t *testing.T) {
	caDir, _ := newCLICA(t)
	dir := t.TempDir()
	pkiMust(t, "ca", "issue", "--dir", caDir, "--name", "m1", "--ip", "10.0.0.1", "--dns", "m1.example", "--group", "prod", "--out", dir)
	pkiMust(t, "ca", "issue", "--dir", caDir, "--name", "alice", "--client", "--access", "admin", "--key-type", "ed25519", "--out", dir)
	for _, tc := range []struct {
		name, flags string
		lint        []string
	}{
		{"m1", "--group prod", []string{"--group", "prod"}},
		{"alice", "--client --access admin", []string{"--kind", "client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldPath := filepath.Join(dir, tc.name+".crt")
			keyOut, csrOut := filepath.Join(dir, tc.name+".new.key"), filepath.Join(dir, tc.name+".csr")
			r := pkiMust(t, "cert", "renew", "--cert", oldPath, "--key-out", keyOut, "--csr-out", csrOut)
			if !strings.Contains(r.stdout, "--renew "+tc.flags+"\n") {
				t.Fatalf("renew does not print the ca sign flags %q:\n%s", tc.flags, r.stdout)
			}
			if st, err := os.Stat(keyOut); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("new key %s: %v", keyOut, err)
			}
			sign := signCommand(t, r.stdout, caDir, dir)
			pkiMust(t, sign...)
			newPath := filepath.Join(dir, tc.name+".crt")
			if i := slices.Index(sign, "--out"); i >= 0 {
				newPath = sign[i+1]
			}
			old, renewed := readCert(t, filepath.Join(dir, tc.name+".crt")), readCert(t, newPath)
			if newPath == oldPath {
				t.Fatalf("the printed ca sign command writes over the certificate in use: %q", sign)
			}
			if !bytes.Equal(old.RawSubject, renewed.RawSubject) || !slices.Equal(old.DNSNames, renewed.DNSNames) ||
				len(old.IPAddresses) != len(renewed.IPAddresses) || (len(old.IPAddresses) > 0 && !old.IPAddresses[0].Equal(renewed.IPAddresses[0])) ||
				uriStrings(old) != uriStrings(renewed) {
				t.Fatalf("renewed certificate differs:\n old %s %v %v %s\n new %s %v %v %s", pki.DNOf(old), old.DNSNames, old.IPAddresses, uriStrings(old),
					pki.DNOf(renewed), renewed.DNSNames, renewed.IPAddresses, uriStrings(renewed))
			}
			if bytes.Equal(old.RawSubjectPublicKeyInfo, renewed.RawSubjectPublicKeyInfo) || old.SerialNumber.Cmp(renewed.SerialNumber) == 0 {
				t.Fatal("renewed certificate carries the old key or serial")
			}
			if pki.KeyTypeOf(old.PublicKey) != pki.KeyTypeOf(renewed.PublicKey) {
				t.Errorf("key type %s became %s", pki.KeyTypeOf(old.PublicKey), pki.KeyTypeOf(renewed.PublicKey))
			}
			lint := append([]string{"cert", "lint", newPath, "--key", keyOut, "--ca", filepath.Join(caDir, pki.CACertFile)}, tc.lint...)
			if r := pkiRun(t, lint...); r.code != ExitOK {
				t.Fatalf("lint of the renewed certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}

	t.Run("ca sign refuses another grant", func(t *testing.T) {
		csr := filepath.Join(dir, "alice2.csr")
		pkiMust(t, "cert", "renew", "--cert", filepath.Join(dir, "alice.crt"), "--key-out", filepath.Join(dir, "alice2.key"), "--csr-out", csr)
		for _, grant := range [][]string{{"--client"}, {"--client", "--access", "readonly"}, {}} {
			args := append([]string{"ca", "sign", "--dir", caDir, "--csr", csr, "--out", filepath.Join(dir, "alice2.crt"), "--renew", "--yes"}, grant...)
			r := pkiRun(t, args...)
			if r.code != ExitFailure || !strings.Contains(r.stderr, "sign it with --client --access admin") {
				t.Fatalf("ca sign %v of an admin renewal: exit %d %s", grant, r.code, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "alice2.crt")); err == nil {
			t.Fatal("a refused signing wrote a certificate")
		}
		// The old one is still valid, so signing without --renew is refused too.
		r := pkiRun(t, "ca", "sign", "--dir", caDir, "--csr", csr, "--client", "--access", "admin", "--yes")
		if r.code != ExitFailure || !strings.Contains(r.stderr, "--renew") {
			t.Fatalf("ca sign without --renew: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		existing := filepath.Join(dir, "m1.key")
		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"no --cert", []string{"--key-out", "a.key", "--csr-out", "a.csr"}, ExitUsage, "--cert, --key-out and --csr-out are required"},
			{"same file twice", []string{"--cert", "a.crt", "--key-out", "a.key", "--csr-out", "a.key"}, ExitUsage, "three different files"},
			{"unknown key type", []string{"--cert", "a.crt", "--key-out", "a.key", "--csr-out", "a.csr", "--key-type", "dsa"}, ExitUsage, "dsa"},
			{"key file exists", []string{"--cert", filepath.Join(dir, "m1.crt"), "--key-out", existing, "--csr-out", filepath.Join(dir, "x.csr")}, ExitFailure, "renew never replaces a key"},
			{"a CA certificate", []string{"--cert", filepath.Join(caDir, pki.CACertFile), "--key-out", filepath.Join(dir, "ca.key"), "--csr-out", filepath.Join(dir, "ca.csr")}, ExitFailure, "make a new CA"},
			{"no such certificate", []string{"--cert", filepath.Join(dir, "none.crt"), "--key-out", filepath.Join(dir, "n.key"), "--csr-out", filepath.Join(dir, "n.csr")}, ExitFailure, "check the path"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := pkiRun(t, append([]string{"cert", "renew"}, tc.args...)...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
					t.Fatalf("exit %d, want %d; stderr %q lacks %q", r.code, tc.code, r.stderr, tc.want)
				}
			})
		}
		if _, err := os.Stat(filepath.Join(dir, "ca.key")); err == nil {
			t.Fatal("a refused renewal left a key behind")
		}
	})
}

func uriStrings(c *x509.Certificate) string {
	var s []string
	for _, u := range c.URIs {
		s = append(s, u.String())
	}
	return strings.Join(s, " ")
}
