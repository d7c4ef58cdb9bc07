package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/wire"
)

func TestKV(t *testing.T) {
	srv, vars := testGroup(t, "")
	steps := []struct {
		name   string
		stdin  string
		argv   []string
		code   int
		stdout string // exact, when not empty
		stderr string // substring, when not empty
	}{
		{"put from argument", "", []string{"kv", "put", "app/config", "v1"}, ExitOK, "1\n", ""},
		{"put from stdin", "from stdin", []string{"kv", "put", "app/notes"}, ExitOK, "2\n", ""},
		{"get", "", []string{"kv", "get", "app/config"}, ExitOK, "v1", ""},
		{"get stale", "", []string{"kv", "get", "app/notes", "--stale"}, ExitOK, "from stdin", ""},
		{"get revision", "", []string{"kv", "get", "app/config", "--revision"}, ExitOK, "1\n", ""},
		{"compare and set", "", []string{"kv", "put", "app/config", "v2", "--if-revision", "1"}, ExitOK, "3\n", ""},
		{"stale compare and set", "", []string{"kv", "put", "app/config", "v3", "--if-revision", "1"}, ExitFailure, "", "fix: read it again"},
		{"create existing", "", []string{"kv", "put", "app/config", "v3", "--create"}, ExitFailure, "", "already exists"},
		{"create and if-revision", "", []string{"kv", "put", "k", "v", "--create", "--if-revision", "2"}, ExitUsage, "", "exclude"},
		{"zero revision", "", []string{"kv", "put", "k", "v", "--if-revision", "0"}, ExitUsage, "", "--create"},
		{"get missing", "", []string{"kv", "get", "nope"}, ExitFailure, "", "key not found"},
		{"delete conditional mismatch", "", []string{"kv", "delete", "app/notes", "--if-revision", "9"}, ExitFailure, "", "revision 2, not 9"},
		{"delete", "", []string{"kv", "delete", "app/notes"}, ExitOK, "4\n", ""},
		{"list", "", []string{"kv", "list", "--prefix", "app/"}, ExitOK, "app/config\t3\n", ""},
		{"no key", "", []string{"kv", "get"}, ExitUsage, "", "accepts 1 arg"},
		{"bad flag", "", []string{"kv", "get", "k", "--bogus"}, ExitUsage, "", "unknown flag"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := runCLI(t, vars, s.stdin, s.argv...)
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
	if kv, err := srv.Group.Get("app/config"); err != nil || string(kv.Value) != "v2" {
		t.Fatalf("app/config = %q, %v; want v2", kv.Value, err)
	}
}

func TestKVList_Pages(t *testing.T) {
	srv, vars := testGroup(t, "readonly")
	for _, k := range []string{"a", "b b", "c"} {
		if _, err := srv.Group.Apply(t.Context(), putCmd(k)); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, vars, "", "kv", "list", "--limit", "2")
	if r.code != ExitOK || r.stdout != "a\t1\n\"b b\"\t2\n" {
		t.Fatalf("list --limit 2: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, vars, "", "kv", "list", "--json")
	var kvs []wire.KV
	for line := range strings.Lines(r.stdout) {
		var kv wire.KV
		if err := json.Unmarshal([]byte(line), &kv); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		kvs = append(kvs, kv)
	}
	if len(kvs) != 3 || string(kvs[2].Value) != "c" {
		t.Fatalf("list --json = %+v; want 3 keys", kvs)
	}
	if r := runCLI(t, vars, "", "kv", "put", "x", "y"); r.code != ExitFailure || !strings.Contains(r.stderr, "--access readwrite") {
		t.Fatalf("readonly put: %d %q; want 1 with a fix naming the readwrite role", r.code, r.stderr)
	}
}

// TestKVList_ByteBound: a member that cuts pages at its byte bound still gives the whole
// listing, and --limit still bounds it.
func TestKVList_ByteBound(t *testing.T) {
	srv := apitest.Start(t, api.Config{MaxListBytes: 3}, nil)
	cc := srv.PKI.Client(t, "cli-readonly", "readonly")
	vars := map[string]string{"MIRRORKV_ENDPOINTS": srv.URL, "MIRRORKV_CACERT": srv.PKI.CAFile,
		"MIRRORKV_CERT": cc.CertFile, "MIRRORKV_KEY": cc.KeyFile}
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := srv.Group.Apply(t.Context(), putCmd(k)); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, vars, "", "kv", "list")
	if r.code != ExitOK || r.stdout != "a\t1\nb\t2\nc\t3\nd\t4\n" {
		t.Fatalf("list over pages of one key: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, vars, "", "kv", "list", "--limit", "3")
	if r.code != ExitOK || r.stdout != "a\t1\nb\t2\nc\t3\n" {
		t.Fatalf("list --limit 3: %d %q %s", r.code, r.stdout, r.stderr)
	}
}
