package cli

import (
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/store"
)

func putCmd(key string) store.Command {
	return store.Command{Op: store.OpPut, Key: key, Value: []byte(key)}
}

func TestMember(t *testing.T) {
	srv, vars := testGroup(t, "admin")
	steps := []struct {
		name   string
		argv   []string
		code   int
		stdout string // substring
	}{
		{"add", []string{"member", "add", "m2", "--addr", "127.0.0.2:7001", "--dn", "CN=m2", "--client-url", "https://127.0.0.2:8001"}, ExitOK, "member m2 added"},
		{"add async", []string{"member", "add", "m3", "--addr", "127.0.0.3:7001", "--dn", "CN=m3", "--async"}, ExitOK, "member m3 added"},
		{"add without dn", []string{"member", "add", "m4", "--addr", "h:1"}, ExitUsage, ""},
		{"add bad addr", []string{"member", "add", "m4", "--addr", "nohost", "--dn", "CN=m4"}, ExitFailure, ""},
		{"list", []string{"member", "list"}, ExitOK, "m3    async     127.0.0.3:7001  -"},
		{"list json", []string{"member", "list", "--json"}, ExitOK, `"clientURL": "https://127.0.0.2:8001"`},
		{"promote", []string{"member", "promote", "m3"}, ExitOK, "member m3 promoted"},
		{"transfer", []string{"member", "transfer", "m2"}, ExitOK, "member m2 is now the primary"},
		{"prefer", []string{"member", "prefer", "m2"}, ExitOK, "member m2 is the preferred primary"},
		{"prefer none", []string{"member", "prefer", "--none"}, ExitOK, "no member is preferred now"},
		{"prefer both", []string{"member", "prefer", "m2", "--none"}, ExitUsage, ""},
		{"prefer neither", []string{"member", "prefer"}, ExitUsage, ""},
		{"recover without --yes", []string{"member", "recover", "--from", "m3", "--dir", "/nonexistent"}, ExitUsage, ""},
		{"recover without --dir", []string{"member", "recover", "--from", "m3", "--yes"}, ExitUsage, ""},
		{"recover a foreign dir", []string{"member", "recover", "--from", "m3", "--dir", "/nonexistent", "--yes"}, ExitFailure, ""},
		{"remove", []string{"member", "remove", "m3"}, ExitOK, "member m3 removed"},
		{"remove again", []string{"member", "remove", "m3"}, ExitFailure, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := runCLI(t, vars, "", s.argv...)
			if r.code != s.code || !strings.Contains(r.stdout, s.stdout) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d and %q", r.code, r.stdout, r.stderr, s.code, s.stdout)
			}
		})
	}
	if srv.Group.Calls("Prefer") != 2 {
		t.Errorf("prefer calls %d, want 2", srv.Group.Calls("Prefer"))
	}
	if srv.Group.Calls("Promote") != 1 || srv.Group.Calls("TransferLeadership") != 1 {
		t.Errorf("promote/transfer calls %d/%d, want 1/1", srv.Group.Calls("Promote"), srv.Group.Calls("TransferLeadership"))
	}
}

func TestMember_NeedsAdmin(t *testing.T) {
	_, vars := testGroup(t, "")
	r := runCLI(t, vars, "", "member", "promote", "m1")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "fix: use a client certificate with the admin access level: mirrorkv ca issue --client --access admin") {
		t.Fatalf("promote as readwrite: %d %q; want 1 with the admin fix", r.code, r.stderr)
	}
}
