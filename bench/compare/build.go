package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// binaries are the absolute paths of the programs under test.
type binaries struct {
	mirrorkv, etcd string
	etcdVersion    string
}

// ensureBinaries builds mirrorkv from the working tree every time (a cached build takes a
// second, and a stale binary would measure old code) and etcd only when it is missing.
func ensureBinaries(ctx context.Context, o *options) (binaries, error) {
	var b binaries
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return b, err
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return b, err
	}
	b.mirrorkv, b.etcd = filepath.Join(bin, "mirrorkv"), filepath.Join(bin, "etcd")
	if o.wants("mirrorkv") {
		fmt.Fprintln(o.Log, "building mirrorkv")
		if err := goBuild(ctx, o.Log, root, b.mirrorkv, "./cmd/mirrorkv"); err != nil {
			return b, err
		}
	}
	if o.wants("etcd") {
		if _, err := os.Stat(b.etcd); err != nil {
			fmt.Fprintln(o.Log, "building etcd (once; a few minutes)")
			if err := goBuild(ctx, o.Log, filepath.Join(root, "bench", "etcd"), b.etcd, "."); err != nil {
				return b, err
			}
		}
		out, err := exec.CommandContext(ctx, b.etcd, "--version").Output()
		if err != nil {
			return b, fmt.Errorf("run %s --version: %w", b.etcd, err)
		}
		b.etcdVersion, _, _ = strings.Cut(strings.TrimPrefix(string(out), "etcd Version: "), "\n")
	}
	return b, nil
}

func goBuild(ctx context.Context, log io.Writer, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s in %s: %w", pkg, dir, err)
	}
	return nil
}

func printMachine(w io.Writer, b binaries) {
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s/%s, %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if b.etcdVersion != "" {
		fmt.Fprintf(w, ", etcd %s", b.etcdVersion)
	}
	fmt.Fprintf(w, "; load average at the start: %s\n", loadAverage())
}

// loadAverage is the 1-, 5- and 15-minute load average: on a machine shared with other
// work it says how much to trust the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
