package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServe_SettingsPrecedence(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "member.conf")
	if err := os.WriteFile(conf, []byte("# a member\nmember-listen = from-file\nclient-listen = \"from-file\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MIRRORKV_CLIENT_LISTEN": "from-env"}
	r := runCLI(t, env, "", "serve", "--config", conf, "--member-listen", "from-flag")
	if r.code != ExitUsage {
		t.Fatalf("serve with bad addresses: exit %d, want %d (usage)\n%s", r.code, ExitUsage, r.stderr)
	}
	for _, want := range []string{`--member-listen "from-flag"`, `--client-listen "from-env"`, "--name is required", "--member-cert is required"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("serve errors lack %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "from-file") {
		t.Errorf("a config file value won over a flag or the environment:\n%s", r.stderr)
	}
}

func TestServe_ConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown setting":  "colour = blue\n",
		"not key = value":  "member-listen\n",
		"config in config": "config = other.conf\n",
	} {
		t.Run(name, func(t *testing.T) {
			conf := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, nil, "", "serve", "--config", conf)
			if r.code != ExitUsage || !strings.Contains(r.stderr, conf) {
				t.Fatalf("serve --config with %s: exit %d %q; want a usage error naming the file", name, r.code, r.stderr)
			}
		})
	}
	r := runCLI(t, nil, "", "serve", "--config", filepath.Join(dir, "missing.conf"))
	if r.code == ExitOK || !strings.Contains(r.stderr, "missing.conf") {
		t.Fatalf("serve with a missing config file: exit %d %q", r.code, r.stderr)
	}
}
