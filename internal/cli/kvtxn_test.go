package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

func TestKVTxn(t *testing.T) {
	srv, vars := testGroup(t, "readwrite")
	if r := runCLI(t, vars, "", "kv", "put", "acct/a", "100"); r.code != ExitOK {
		t.Fatalf("put: %q", r.stderr)
	}
	transfer := "# move 30 from a to b\nrevision acct/a = 1\nabsent acct/b\nvalue acct/a = 100\n\nthen\nput acct/a 70\nput acct/b 30\ndelete nope\nelse\nput failed yes\n"
	file := filepath.Join(t.TempDir(), "t.json")
	if err := os.WriteFile(file, []byte(`{"compare":[{"key":"acct/b","target":"exists"}],"then":[{"op":"delete","key":"acct/b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		stdin  string
		argv   []string
		code   int
		stdout string
		stderr string
	}{
		{"lines, then", transfer, []string{"kv", "txn"}, ExitOK, "then 2\nput acct/a 2\nput acct/b 2\ndelete nope not-found\n", ""},
		{"lines, else", transfer, []string{"kv", "txn", "-"}, ExitOK, "else 3\nput failed 3\n", ""},
		{"json file", "", []string{"kv", "txn", file, "--json"}, ExitOK, `{"succeeded":true,"revision":4,"results":[{"op":"delete","key":"acct/b","revision":4,"deleted":true}]}` + "\n", ""},
		{"bad line", "frobnicate k\n", []string{"kv", "txn"}, ExitUsage, "", "unknown compare"},
		{"write before then", "put k v\n", []string{"kv", "txn"}, ExitUsage, "", "before then or else"},
		{"server refusal", "then\nput k 1\ndelete k\n", []string{"kv", "txn"}, ExitFailure, "", "twice"},
		{"missing file", "", []string{"kv", "txn", "/nonexistent/t"}, ExitFailure, "", "open the transaction"},
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
	if kv, err := srv.Group.Get("acct/a"); err != nil || string(kv.Value) != "70" {
		t.Fatalf("acct/a = %q, %v; want 70", kv.Value, err)
	}
}

func TestParseTxnInput(t *testing.T) {
	got, err := parseTxnInput([]byte("revision a != 0\nrevision b < 9\nvalue c = two words\nvalue d !=\nexists e\nthen\nput a x y\nelse\ndelete b\n"))
	want := client.Txn{
		Compare: []wire.Compare{
			{Key: "a", Target: "revision", Op: "!=", Revision: 0},
			{Key: "b", Target: "revision", Op: "<", Revision: 9},
			{Key: "c", Target: "value", Op: "=", Value: "two words"},
			{Key: "d", Target: "value", Op: "!="},
			{Key: "e", Target: "exists"},
		},
		Then: []wire.TxnOp{{Op: "put", Key: "a", Value: "x y"}},
		Else: []wire.TxnOp{{Op: "delete", Key: "b"}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseTxnInput = %+v, %v\nwant %+v", got, err, want)
	}
	for _, bad := range []string{"revision a = x\n", "revision a =\n", "exists\n", "then now\n", "then\nexists a\n", "then\ndelete a b\n", "then\nput\n"} {
		if _, err := parseTxnInput([]byte(bad)); err == nil {
			t.Errorf("parseTxnInput(%q) accepted it", bad)
		}
	}
}
