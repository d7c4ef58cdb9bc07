package cli

import (
	"strings"
	"testing"
)

func TestLease(t *testing.T) {
	srv, vars := testGroup(t, "")
	r := runCLI(t, vars, "", "lease", "grant", "30s")
	if r.code != ExitOK {
		t.Fatalf("grant: exit %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || lines[1] != "30" {
		t.Fatalf("grant printed %q, want the ID and 30", r.stdout)
	}
	id := lines[0]
	steps := []struct {
		name   string
		argv   []string
		code   int
		stdout string // exact, when not empty
		stderr string // substring, when not empty
	}{
		{"put with lease", []string{"kv", "put", "svc/a", "up", "--lease", id}, ExitOK, "1\n", ""},
		{"put with another", []string{"kv", "put", "svc/b", "up", "--lease", id}, ExitOK, "2\n", ""},
		{"put with unknown lease", []string{"kv", "put", "svc/c", "up", "--lease", "999"}, ExitFailure, "", "lease does not exist"},
		{"lease and create", []string{"kv", "put", "svc/c", "up", "--lease", id, "--create"}, ExitUsage, "", "does not combine"},
		{"list", []string{"lease", "list"}, ExitOK, id + "\t30\t2\n", ""},
		{"keepalive once", []string{"lease", "keepalive", id, "--once"}, ExitOK, "30\n", ""},
		{"keepalive bad id", []string{"lease", "keepalive", "x"}, ExitUsage, "", "lease ID"},
		{"grant bad ttl", []string{"lease", "grant", "soon"}, ExitUsage, "", "TTL"},
		{"revoke", []string{"lease", "revoke", id}, ExitOK, "3\nsvc/a\nsvc/b\n", ""},
		{"revoke again", []string{"lease", "revoke", id}, ExitFailure, "", "reason 420"},
		{"keepalive gone", []string{"lease", "keepalive", id}, ExitFailure, "", "lease grant"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := runCLI(t, vars, "", s.argv...)
			if r.code != s.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, s.code, r.stderr)
			}
			if s.stdout != "" && r.stdout != s.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, s.stdout)
			}
			if s.stderr != "" && !strings.Contains(r.stderr, s.stderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, s.stderr)
			}
		})
	}
	if _, err := srv.Group.Get("svc/a"); err == nil {
		t.Fatal("svc/a survived the revoke")
	}
}
