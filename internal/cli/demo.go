package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
)

func newDemoCmd(e *env) *cobra.Command {
	var dir string
	var duration time.Duration
	var failover, async int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run a three-member group on this machine and show it working",
		Long: `Make a replication CA, a client CA, member and admin client certificates, start the
members as separate "mirrorkv serve" processes on 127.0.0.1, form the group, write and
read a key through it and print its status. The group stays up until Ctrl-C or
--duration, then its members are stopped. Without --dir everything lives in a temporary
directory that is removed at the end; with --dir it is kept for inspection.`,
		Example: `  mirrorkv demo
  mirrorkv demo --dir /tmp/mkv --duration 10m`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if failover < 1 || async < 0 {
				return usagef("--failover must be at least 1 and --async at least 0")
			}
			return demo(e, dir, duration, failover, async)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "keep the CAs, certificates, data and logs in `DIR` (default: a temporary directory, removed at the end)")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: run until Ctrl-C)")
	f.IntVar(&failover, "failover", 3, "failover members (voters)")
	f.IntVar(&async, "async", 0, "async members (non-voters)")
	return cmd
}

func demo(e *env, dir string, duration time.Duration, failover, async int) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the mirrorkv executable to start members with: %w", err)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mirrorkv-demo-"); err != nil {
			return fmt.Errorf("create demo directory: %w", err)
		}
		defer os.RemoveAll(dir)
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return err
		}
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return usagef("--dir %s is not empty: the demo makes a new CA and group there; give an empty or new directory", dir)
		}
	}
	// A binary of "go run" lives only as long as the demo's go command; the commands printed
	// below run in another shell, so they get a copy that stays for as long as the group.
	bin := filepath.Join(dir, "bin", "mirrorkv")
	if err := copyExecutable(self, bin); err != nil {
		return err
	}
	ctx := e.ctx
	g, err := localgroup.Create(ctx, localgroup.Options{
		Binary: bin, Dir: dir, Failover: failover, Async: async, Progress: e.stdout,
	})
	if err != nil {
		return fmt.Errorf("start the demo group: %w", err)
	}
	defer func() {
		fmt.Fprintln(e.stdout, "stopping the members")
		if err := g.Close(); err != nil {
			fmt.Fprintf(e.stderr, "stop members: %v\n", err)
		}
	}()
	envFile := filepath.Join(dir, "demo.env")
	env := exports(g.Env()) + fmt.Sprintf("export PATH=%q:\"$PATH\"\n", filepath.Dir(bin))
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", envFile, err)
	}
	if err := demoTraffic(ctx, e.stdout, g); err != nil {
		return err
	}
	st, err := g.Admin().Status(ctx)
	if err != nil {
		return fmt.Errorf("read the group's status: %w", err)
	}
	primary := g.Members[0]
	for _, m := range g.Members {
		if m.Name == st.Primary {
			primary = m
		}
	}
	fmt.Fprintln(e.stdout)
	if err := renderStatus(e.stdout, st, time.Now(), statusView{contactWarn: defaultContactWarn}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `
The group is up. In another shell, try:
  source %s    # mirrorkv on the PATH, and the group's address and admin credentials
  mirrorkv status --watch
  mirrorkv kv put colour blue && mirrorkv kv get colour
  mirrorkv kv list --prefix ""
  mirrorkv probe %s --ca "$MIRRORKV_CACERT" --cert "$MIRRORKV_CERT" --key "$MIRRORKV_KEY"
  kill -9 %d    # %s, the primary: a failover member takes over within a second or two
Member logs are in %s/m*/member.log.
`, envFile, primary.ClientAddr, primary.Pid(), primary.Name, dir)
	return waitDemo(ctx, e.stdout, duration)
}

// demoTraffic writes a key through a standby (the write is forwarded to the primary) and
// reads it back, linearizably, through another member.
func demoTraffic(ctx context.Context, w io.Writer, g *localgroup.Group) error {
	writer, reader := g.Members[0], g.Members[0]
	if len(g.Members) > 2 {
		writer, reader = g.Members[1], g.Members[2]
	}
	const key, value = "greeting", "hello from mirrorkv"
	wc, err := g.AdminOf(writer)
	if err != nil {
		return err
	}
	defer wc.Close()
	rc, err := g.AdminOf(reader)
	if err != nil {
		return err
	}
	defer rc.Close()
	rev, err := wc.Put(ctx, key, []byte(value))
	if err != nil {
		return fmt.Errorf("write %s through %s: %w", key, writer.Name, err)
	}
	fmt.Fprintf(w, "wrote %s=%q through %s (revision %d)\n", key, value, writer.Name, rev)
	got, _, err := rc.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s through %s: %w", key, reader.Name, err)
	}
	if string(got) != value {
		return fmt.Errorf("read %s through %s: got %q, want %q", key, reader.Name, got, value)
	}
	fmt.Fprintf(w, "read  %s=%q through %s (linearizable)\n", key, got, reader.Name)
	return nil
}

func waitDemo(ctx context.Context, w io.Writer, duration time.Duration) error {
	if duration <= 0 {
		fmt.Fprintln(w, "\nPress Ctrl-C to stop.")
		<-ctx.Done()
		return nil
	}
	fmt.Fprintf(w, "\nStopping in %s (or on Ctrl-C).\n", duration)
	select {
	case <-ctx.Done():
	case <-time.After(duration):
	}
	return nil
}

// copyExecutable copies the executable at from to a new file at to, mode 0755.
func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copy the mirrorkv executable for the demo: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("copy the mirrorkv executable for the demo: %w", err)
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("copy the mirrorkv executable for the demo: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy the mirrorkv executable to %s: %w", to, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("copy the mirrorkv executable to %s: %w", to, err)
	}
	return nil
}

func exports(env []string) string {
	var b strings.Builder
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%q\n", name, value)
	}
	return b.String()
}
