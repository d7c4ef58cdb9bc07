package cli

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/store"
)

// storeGroup applies the fake group's writes to a real store, whose change log watches read.
type storeGroup struct {
	*apitest.Group
	mu sync.Mutex
	s  *store.Store
}

func (g *storeGroup) Apply(_ context.Context, cmd store.Command) (store.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.Apply(g.s.AppliedIndex()+1, store.EncodeCommand(cmd)), nil
}

// watchGroup serves the API over a real store, and returns the MIRRORKV_* environment of a
// readwrite client certificate.
func watchGroup(t *testing.T, opts store.Options) map[string]string {
	t.Helper()
	opts.NoFsync = true
	s, err := store.Open(filepath.Join(t.TempDir(), "store.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	g := &storeGroup{Group: apitest.NewGroup("m1"), s: s}
	pki := apitest.NewPKI(t)
	hs := httptest.NewUnstartedServer(api.New(api.Config{Node: "m1"}, g, s, prometheus.NewRegistry(), nil).Handler())
	hs.TLS = pki.ServerTLS()
	hs.StartTLS()
	t.Cleanup(hs.Close)
	cc := pki.Client(t, "cli-watch", "readwrite")
	return map[string]string{"MIRRORKV_ENDPOINTS": hs.URL, "MIRRORKV_CACERT": pki.CAFile,
		"MIRRORKV_CERT": cc.CertFile, "MIRRORKV_KEY": cc.KeyFile}
}

func TestKVWatch(t *testing.T) {
	vars := watchGroup(t, store.Options{ChangeRetention: 5})
	for i, argv := range [][]string{{"put", "app/a", "1"}, {"put", "other", "x"}, {"put", "app/b", "two words"}, {"delete", "app/a"}} {
		if r := runCLI(t, vars, "", append([]string{"kv"}, argv...)...); r.code != ExitOK {
			t.Fatalf("write %d: %q", i, r.stderr)
		}
	}
	steps := []struct {
		name   string
		argv   []string
		code   int
		stdout string
		stderr string
	}{
		{"from a revision", []string{"kv", "watch", "app/", "--from", "1", "--count", "3"}, ExitOK,
			"1\tput\tapp/a\t1\n3\tput\tapp/b\ttwo words\n4\tdelete\tapp/a\n", ""},
		{"one key as json", []string{"kv", "watch", "app/b", "--exact", "--from", "2", "--count", "1", "--json"}, ExitOK,
			`{"revision":4,"events":[{"type":"put","key":"app/b","value":"dHdvIHdvcmRz","revision":3,"created":3}]}` + "\n", ""},
		{"bad from", []string{"kv", "watch", "app/", "--from", "0"}, ExitUsage, "", "revisions start at 1"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := runCLI(t, vars, "", s.argv...)
			if r.code != s.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, s.code, r.stderr)
			}
			if r.stdout != s.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, s.stdout)
			}
			if s.stderr != "" && !strings.Contains(r.stderr, s.stderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, s.stderr)
			}
		})
	}
	t.Run("too old", func(t *testing.T) {
		for i := range 5 {
			runCLI(t, vars, "", "kv", "put", "app/c", fmt.Sprint(i))
		}
		r := runCLI(t, vars, "", "kv", "watch", "app/", "--from", "1")
		if r.code != ExitFailure || !strings.Contains(r.stderr, "reason 410") || !strings.Contains(r.stderr, "oldest revision kept is 5") {
			t.Fatalf("exit %d, stderr %q; want 1 with reason 410 and the oldest revision", r.code, r.stderr)
		}
	})
}
