package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Cobra reports a command line that names no command only as text; isUnknownCommand reads
// that text. This pins it: the run must end in the usage exit status, with cobra's own
// error and the hint, for an unknown top-level command and an unknown subcommand alike.
func TestIsUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"ca", "frobnicate"}} {
		var stdout, stderr bytes.Buffer
		code := run(&env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
			getenv: func(string) string { return "" }}, args)
		if code != ExitUsage || !strings.Contains(stderr.String(), "run 'mirrorkv help'") {
			t.Errorf("mirrorkv %s: exit %d, stderr %q; want %d and the usage hint", strings.Join(args, " "), code, stderr.String(), ExitUsage)
		}
	}
}

// A command group run without a known subcommand is a usage mistake, not a success.
func TestCommandGroups_NeedASubcommand(t *testing.T) {
	for _, args := range [][]string{{"ca"}, {"cert", "lnt"}, {"member", "ad"}, {"kv", "gte"}} {
		var stdout, stderr bytes.Buffer
		code := run(&env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
			getenv: func(string) string { return "" }}, args)
		if code != ExitUsage || !strings.Contains(stderr.String(), "subcommand") {
			t.Errorf("mirrorkv %s: exit %d, stderr %q; want %d naming the subcommands", strings.Join(args, " "), code, stderr.String(), ExitUsage)
		}
	}
}
