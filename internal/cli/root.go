// Package cli is mirrorkv's command tree. Every command reads its flags into an options
// struct, writes only to the writers it is given, and returns an error; Run turns that into
// the exit status: 0 success, 1 failure (the message on stderr says what to do), 2 usage.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Exit statuses, part of the stable interface.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// env is what every command may touch of the outside world.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// usageError marks a mistake in how a command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Run executes the command line args and returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}, args)
}

func run(e *env, args []string) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	err := root.ExecuteContext(e.ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(e.stderr, "mirrorkv: %v\n", err)
	// An error this command found itself carries its reason code, and the code its fix; an
	// error a member answered has both in its message already.
	if code := reason.Of(err, reason.OK); code != reason.OK && !strings.Contains(err.Error(), fmt.Sprintf("reason %d", code)) {
		fmt.Fprintf(e.stderr, "reason %d %s", code, code.Name())
		if fix := code.Fix(); fix != "" {
			fmt.Fprintf(e.stderr, ": %s", fix)
		}
		fmt.Fprintln(e.stderr)
	}
	if _, ok := errors.AsType[usageError](err); ok || isUnknownCommand(err) {
		fmt.Fprintln(e.stderr, "run 'mirrorkv help' (or add --help to the command) for usage")
		return ExitUsage
	}
	return ExitFailure
}

// isUnknownCommand recognises cobra's error for a command line naming no command. Cobra has
// no value or type for it, only its text; TestIsUnknownCommand pins that text, so a cobra
// upgrade that changes it fails a test rather than turning usage mistakes into exit 1.
func isUnknownCommand(err error) bool { return strings.HasPrefix(err.Error(), "unknown command ") }

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "mirrorkv",
		Short: "a replicated key-value store where every connection is mutual TLS",
		Long: `mirrorkv keeps one data set on a group of members: failover members vote and take
over when the primary dies, async members follow. Every connection, member to member
and client to member, is mutual TLS from a private, dedicated CA that mirrorkv creates
and runs for you.

Every flag of every command may also come from the environment as MIRRORKV_ and its
name in capitals with "_" for "-": --endpoints from MIRRORKV_ENDPOINTS, serve's
--member-listen from MIRRORKV_MEMBER_LISTEN. A flag on the command line wins over the
environment; an empty variable counts as unset. The few flags that only the command line
may set say so in their help.

Start here:  mirrorkv demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// One place fills flags from the environment, for every command; cobra runs the
		// nearest PersistentPreRunE only, so no subcommand may define its own.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return fillFromEnv(cmd, e.getenv) },
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(e),
		newDemoCmd(e),
		newServeCmd(e),
		newCACmd(e),
		newCertCmd(e),
		newProbeCmd(e),
		newKVCmd(e),
		newLeaseCmd(e),
		newStatusCmd(e),
		newMemberCmd(e),
		newBenchCmd(e),
		newSnapshotCmd(e),
	)
	for _, c := range root.Commands() {
		if c.HasSubCommands() && !c.Runnable() {
			c.RunE = unknownSubcommand
		}
	}
	return root
}

// unknownSubcommand answers a command group (ca, cert, kv, member) given no subcommand it
// knows: cobra would print the group's help and exit 0, and a mistyped step of a script
// would pass for a success.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usagef("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(subcommandNames(cmd), ", "))
	}
	return usagef("unknown command %q for %q; its subcommands are %s", args[0], cmd.CommandPath(), strings.Join(subcommandNames(cmd), ", "))
}

func subcommandNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}

// args wraps a cobra positional-argument check so that a mistake exits with status 2.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the mirrorkv version and the Go toolchain that built it",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			version, goVersion := buildVersion()
			fmt.Fprintf(e.stdout, "mirrorkv %s (%s)\n", version, goVersion)
			return nil
		},
	}
}

// buildVersion is this binary's module version and the Go toolchain that built it.
func buildVersion() (version, goVersion string) {
	version, goVersion = "(devel)", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
	}
	return version, goVersion
}
