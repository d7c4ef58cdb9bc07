package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mirrorkv/mirrorkv/node"
)

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"endpoints": "MIRRORKV_ENDPOINTS", "cacert": "MIRRORKV_CACERT", "crl": "MIRRORKV_CRL",
		"member-listen": "MIRRORKV_MEMBER_LISTEN", "max-read-bytes-in-flight": "MIRRORKV_MAX_READ_BYTES_IN_FLIGHT",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// TestServe_Sources fills one node.Config from the command line, the environment and a
// config file at once: a flag wins over the environment, the environment over the file.
func TestServe_Sources(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "member.conf")
	body := "election-timeout = 1s\nsnapshot-threshold = 12\nmax-value-bytes = 5\njoin = f:1\njoin = f:2\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"MIRRORKV_CONFIG":            conf,
		"MIRRORKV_HEARTBEAT_TIMEOUT": "9s", // the flag wins
		"MIRRORKV_ELECTION_TIMEOUT":  "3s", // wins over the file
		"MIRRORKV_JOIN":              "e:1,e:2",
		"MIRRORKV_NAME":              "m1",
	}
	var cfg node.Config
	var o serveOptions
	cmd := &cobra.Command{Use: "serve"}
	bindServeFlags(cmd.Flags(), &cfg, &o)
	if err := cmd.ParseFlags([]string{"--heartbeat-timeout", "2s"}); err != nil {
		t.Fatal(err)
	}
	if err := fillFromEnv(cmd, func(k string) string { return vars[k] }); err != nil {
		t.Fatalf("fillFromEnv: %v", err)
	}
	if err := fillFromFile(cmd.Flags(), o.ConfigFile); err != nil {
		t.Fatalf("fillFromFile: %v", err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"--heartbeat-timeout (flag over env)", cfg.Cluster.HeartbeatTimeout, 2 * time.Second},
		{"--election-timeout (env over file)", cfg.Cluster.ElectionTimeout, 3 * time.Second},
		{"--snapshot-threshold (file)", cfg.Cluster.SnapshotThreshold, uint64(12)},
		{"--max-value-bytes (file)", cfg.API.MaxValueBytes, int64(5)},
		{"--name (env)", cfg.Name, "m1"},
		{"--config (env)", o.ConfigFile, conf},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if !slices.Equal(cfg.Cluster.Join, []string{"e:1", "e:2"}) {
		t.Errorf("--join = %q, want the environment's e:1 and e:2 only", cfg.Cluster.Join)
	}
}

func TestEnv_NonServeCommands(t *testing.T) {
	_, vars := testGroup(t, "admin")
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range vars {
			m[k] = v
		}
		return m
	}
	t.Run("a command's own flag", func(t *testing.T) {
		r := runCLI(t, with("MIRRORKV_JSON", "true"), "", "status")
		if r.code != ExitOK || !strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
			t.Fatalf("status with MIRRORKV_JSON=true: exit %d, stdout %q, stderr %q; want JSON", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("the flag wins", func(t *testing.T) {
		r := runCLI(t, with("MIRRORKV_JSON", "true"), "", "status", "--json=false")
		if r.code != ExitOK || strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
			t.Fatalf("status --json=false with MIRRORKV_JSON=true: exit %d, stdout %q; want the table", r.code, r.stdout)
		}
	})
	t.Run("a persistent flag a local one hides", func(t *testing.T) {
		// member add has a --cert of its own (the new member's); the connection's --cert
		// still comes from MIRRORKV_CERT, and member add's own does not.
		r := runCLI(t, vars, "", "member", "add", "m4", "--addr", "127.0.0.4:7001", "--dn", "CN=m4")
		if r.code != ExitOK {
			t.Fatalf("member add with the connection in the environment: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestEnv_BadValueNamesTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name, variable string
		argv           []string
	}{
		{"kv", "MIRRORKV_TIMEOUT", []string{"kv", "get", "k"}},
		{"status", "MIRRORKV_INTERVAL", []string{"status"}},
		{"serve", "MIRRORKV_ELECTION_TIMEOUT", []string{"serve"}},
		{"serve bool", "MIRRORKV_NO_MEMBER_CRL", []string{"serve"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, map[string]string{tc.variable: "soon"}, "", tc.argv...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "environment variable "+tc.variable) {
				t.Fatalf("%s with %s=soon: exit %d %q; want 2 naming the variable", tc.name, tc.variable, r.code, r.stderr)
			}
		})
	}
}

// TestEnv_CommandLineOnly pins the flags the environment never fills, and that each one
// the list names exists.
func TestEnv_CommandLineOnly(t *testing.T) {
	want := []string{"ca init --insecure-no-passphrase", "ca sign --yes", "cert lint --crl", "cert lint --key", "cert renew --cert", "member add --cert"}
	var got []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(fl *pflag.Flag) {
			if fl.Annotations[commandLineOnly] != nil {
				got = append(got, strings.TrimPrefix(c.CommandPath(), "mirrorkv ")+" --"+fl.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&env{getenv: func(string) string { return "" }}))
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("command-line-only flags = %q, want %q", got, want)
	}
	// A value that would not parse shows whether the variable was read at all.
	r := runCLI(t, map[string]string{"MIRRORKV_YES": "soon"}, "", "ca", "sign", "--dir", t.TempDir(), "--csr", "none.csr")
	if r.code == ExitOK || strings.Contains(r.stderr, "MIRRORKV_YES") {
		t.Fatalf("ca sign read MIRRORKV_YES: %q", r.stderr)
	}
}
