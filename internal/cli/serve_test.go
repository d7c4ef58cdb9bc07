package cli

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/mtls"
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

func TestParseConfig(t *testing.T) {
	long := strings.Repeat("x", 100_000) // longer than a bufio.Scanner line
	for _, tc := range []struct {
		name string
		in   string
		want map[string][]string
		line int // of the *configLineError, 0 for none
	}{
		{"empty", "", map[string][]string{}, 0},
		{"comments and blank lines", "# a member\n\n   \n\t# indented\nname = m1\n", map[string][]string{"name": {"m1"}}, 0},
		{"dashes, quotes and spaces", "--dir=\"/var/lib/mirrorkv\"\r\n  name   =  m1  \n", map[string][]string{"dir": {"/var/lib/mirrorkv"}, "name": {"m1"}}, 0},
		{"repeated flag keeps every value", "join = a:1\njoin = b:1\n", map[string][]string{"join": {"a:1", "b:1"}}, 0},
		{"value holds =", "join-pin = CN=m1,O=x", map[string][]string{"join-pin": {"CN=m1,O=x"}}, 0},
		{"no final newline", "name = m1", map[string][]string{"name": {"m1"}}, 0},
		{"a line longer than 64 KiB", "dir = " + long + "\nname = m1\n", map[string][]string{"dir": {long}, "name": {"m1"}}, 0},
		{"line without =", "# a member\nname = m1\n\nbootstrap\n", nil, 4},
		{"first bad line is named", "a\nb\n", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tc.in))
			if tc.line != 0 {
				le, ok := errors.AsType[*configLineError](err)
				if !ok || le.Line != tc.line {
					t.Fatalf("parseConfig = %v, %v; want a configLineError on line %d", got, err, tc.line)
				}
				return
			}
			if err != nil || !maps.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("parseConfig = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseConfig checks parseConfig against the file's lines read on their own: an accepted
// file holds every setting line in the map, in order, and nothing else; a refused one names a
// line that has no "="; comments and blank lines change nothing but line numbers.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"", "\n", "# only a comment", "name = m1\n", "--name=\"m1\"\r\n", "join = a\njoin = b\n",
		"join-pin = CN=m1,O=x\n", "=\n", "= v\n", "--\n", "-- = v", "k = \"\"\n", `k = "a"b"`,
		"\"k\" = v", "  # x = y\nbootstrap\n", "a\rb = c\n", "k\x00 = \xff\n", "k = v\u0085\n", "\u00a0#k=v\n",
		"dir = " + strings.Repeat("x", 70_000) + "\nname = m1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseConfig(data)
		lines := strings.Split(string(data), "\n")
		if err != nil {
			le, ok := errors.AsType[*configLineError](err)
			if !ok || le.Line < 1 || le.Line > len(lines) {
				t.Fatalf("parseConfig(%q): %v is not a configLineError with a line of the file", data, err)
			}
			line := strings.TrimSpace(lines[le.Line-1])
			if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "=") || le.Text != line {
				t.Fatalf("parseConfig(%q) refused line %d %q, which is %q", data, le.Line, le.Text, line)
			}
		} else {
			checkSettings(t, data, lines, got)
			// Written back as --name = "value" lines, the settings parse to themselves.
			var b strings.Builder
			for _, k := range slices.Sorted(maps.Keys(got)) {
				for _, v := range got[k] {
					b.WriteString("--" + k + ` = "` + v + "\"\n")
				}
			}
			again, err := parseConfig([]byte(b.String()))
			if err != nil || !maps.EqualFunc(again, got, slices.Equal) {
				t.Fatalf("settings %q written back as %q parse to %q, %v", got, b.String(), again, err)
			}
		}
		// Comments and blank lines in front shift a refusal by their count and change nothing else.
		shifted, serr := parseConfig(append([]byte("# comment\n\n  \t\n"), data...))
		if le, ok := errors.AsType[*configLineError](err); ok {
			if sle, ok := errors.AsType[*configLineError](serr); !ok || sle.Line != le.Line+3 || sle.Text != le.Text {
				t.Fatalf("parseConfig(%q) refused line %d, but %v after three more lines", data, le.Line, serr)
			}
		} else if serr != nil || !maps.EqualFunc(shifted, got, slices.Equal) {
			t.Fatalf("parseConfig(%q) = %q, but %q, %v after comments", data, got, shifted, serr)
		}
		// A line without "=" after an accepted file is refused with its number.
		if err == nil {
			bad := string(data) + "\nbootstrap"
			_, err := parseConfig([]byte(bad))
			if le, ok := errors.AsType[*configLineError](err); !ok || le.Line != strings.Count(bad, "\n")+1 {
				t.Fatalf("parseConfig(%q) = %v, want a refusal of its last line", bad, err)
			}
		}
	})
}

// checkSettings fails t unless got holds, in order, the value of every line of an accepted
// file that is not blank or a comment, and nothing else.
func checkSettings(t *testing.T, data []byte, lines []string, got map[string][]string) {
	t.Helper()
	seen := map[string]int{}
	for n, raw := range lines {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("parseConfig(%q) accepted line %d %q", data, n+1, line)
		}
		key = strings.TrimPrefix(strings.TrimSpace(key), "--")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if i := seen[key]; i >= len(got[key]) || got[key][i] != value {
			t.Fatalf("parseConfig(%q): line %d %q gives %q its value %d, want %q; map %q", data, n+1, line, key, i+1, value, got)
		}
		seen[key]++
	}
	for k, vs := range got {
		if seen[k] != len(vs) {
			t.Fatalf("parseConfig(%q) = %q: %q holds %d values, the file %d", data, got, k, len(vs), seen[k])
		}
	}
}

func TestReloadOnHUP(t *testing.T) {
	ca := pkitest.NewCA(t, "replication")
	leaf := ca.Member("m1")
	rec := &recordLog{}
	log := slog.New(rec)
	src, err := mtls.NewSource(mtls.Config{Port: mtls.PortMember, CertFile: leaf.CertPath, KeyFile: leaf.KeyPath,
		CAFile: ca.CertPath, Policy: mtls.PolicyCA}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("accepted", func(t *testing.T) {
		rec.reset()
		reloadOnHUP(src, log)
		if n := rec.count(slog.LevelWarn); n != 0 {
			t.Errorf("an accepted reload logged %d warnings or errors: %v", n, rec.all())
		}
	})
	t.Run("refused is logged once", func(t *testing.T) {
		pkitest.WriteFile(t, leaf.CertPath, []byte("not a certificate\n"))
		rec.reset()
		reloadOnHUP(src, log)
		if got := rec.all(); len(got) != 1 || got[0].Level != slog.LevelError {
			t.Errorf("one refused reload logged %d lines, want one error: %v", len(got), got)
		}
	})
}

// recordLog is a slog handler that keeps every record.
type recordLog struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordLog) WithGroup(string) slog.Handler            { return h }
func (h *recordLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordLog) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = nil
}

func (h *recordLog) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}

// count is the number of records at level or above.
func (h *recordLog) count(level slog.Level) int {
	n := 0
	for _, r := range h.all() {
		if r.Level >= level {
			n++
		}
	}
	return n
}
