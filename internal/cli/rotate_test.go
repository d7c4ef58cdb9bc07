package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/pki"
)

func TestCARotate_Usage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "members")
	if _, err := pki.InitCA(dir, pki.CAOptions{Unencrypted: true}); err != nil {
		t.Fatal(err)
	}
	clients, err := pki.InitCA(filepath.Join(t.TempDir(), "clients"), pki.CAOptions{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	is, err := clients.Issue(pki.IssueRequest{Name: "ops", Kind: pki.KindClient, Access: pki.AccessAdmin})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.WriteIssued(t.TempDir(), is)
	if err != nil {
		t.Fatal(err)
	}
	conn := []string{"--endpoints", "https://127.0.0.1:1", "--cacert", filepath.Join(dir, pki.CACertFile), "--cert", cert, "--key", key}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"ca", "rotate"}, ExitUsage, "abort, apply, plan, verify"},
		{"no kind", append([]string{"ca", "rotate", "plan", "--dir", dir}, conn...), ExitUsage, "give --member"},
		{"both kinds", append([]string{"ca", "rotate", "plan", "--member", "--client", "--dir", dir}, conn...), ExitUsage, "give --member"},
		{"no dir", append([]string{"ca", "rotate", "apply", "--member"}, conn...), ExitUsage, "--dir is required"},
		{"not a CA", append([]string{"ca", "rotate", "plan", "--member", "--dir", t.TempDir()}, conn...), ExitFailure, "read CA certificate"},
		{"no connection", []string{"ca", "rotate", "plan", "--member", "--dir", dir}, ExitUsage, "--endpoints"},
		{"verify before apply", append([]string{"ca", "rotate", "verify", "--member", "--dir", dir}, conn...), ExitFailure, "the rotation is not finished (nothing applied yet)"},
		{"abort before apply", append([]string{"ca", "rotate", "abort", "--member", "--dir", dir}, conn...), ExitFailure, "no CA rotation in progress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pkiRun(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
}
