package cli

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/reason"
)

// ca revoke --push and ca crl --push send the new CRL to the group; without the connection
// settings nothing is revoked, and a refused push says that the CRL is written but not in
// force, and what to do.
func TestCACmd_Push(t *testing.T) {
	dir, _ := newCLICA(t)
	out := t.TempDir()
	pkiMust(t, "ca", "issue", "--dir", dir, "--name", "eve", "--client", "--access", "readwrite", "--out", out)
	srv, vars := testGroup(t, "admin")

	t.Run("no connection settings", func(t *testing.T) {
		r := runCLI(t, map[string]string{}, "", "ca", "revoke", "--dir", dir, filepath.Join(out, "eve.crt"), "--push")
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--endpoints") {
			t.Fatalf("exit %d %q, want a usage error naming --endpoints", r.code, r.stderr)
		}
		if n := readCRLNumber(t, dir); n != 1 {
			t.Fatalf("CRL number %d after a refused command, want 1: nothing may be revoked", n)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		r := runCLI(t, vars, "", "ca", "revoke", "--dir", dir, filepath.Join(out, "eve.crt"), "--push")
		if r.code != ExitOK || !strings.Contains(r.stdout, "pushed CRL number 2") || !strings.Contains(r.stdout, "client port: 1 revoked") {
			t.Fatalf("exit %d\n%s%s\nwant the pushed CRL number 2 with 1 revoked", r.code, r.stdout, r.stderr)
		}
		if n := len(srv.Group.CRLs()); n != 1 {
			t.Fatalf("the group received %d CRLs, want 1", n)
		}
	})
	t.Run("crl", func(t *testing.T) {
		r := runCLI(t, vars, "", "ca", "crl", "--dir", dir, "--push")
		if r.code != ExitOK || !strings.Contains(r.stdout, "pushed CRL number 3") {
			t.Fatalf("exit %d\n%s%s\nwant the pushed CRL number 3", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("refused", func(t *testing.T) {
		srv.Group.SetCRLCheck(func([]byte) (string, error) {
			return "", reason.Wrap(reason.CRLUnknownSigner, errors.New("signed by no CA of the group"))
		})
		defer srv.Group.SetCRLCheck(nil)
		r := runCLI(t, vars, "", "ca", "crl", "--dir", dir, "--push")
		if r.code != ExitFailure || !strings.Contains(r.stderr, "reason 141") || !strings.Contains(r.stderr, "not in force") {
			t.Fatalf("exit %d %q, want 1 with reason 141 and what to do", r.code, r.stderr)
		}
	})
}
