// Package e2e tests mirrorkv as operators run it: real `mirrorkv` processes, real
// certificates from `mirrorkv ca`, real data directories, real kills.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
)

// binary is the mirrorkv executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mirrorkv-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "mirrorkv")
	args := []string{"build", "-o", binary}
	if os.Getenv("MIRRORKV_E2E_RACE") != "0" {
		// The members run with the race detector too: a race in the server fails the test.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/mirrorkv")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build mirrorkv:", err)
		return 1
	}
	return m.Run()
}

// startGroup starts a group and stops it when the test ends; on failure the members' logs
// are printed.
func startGroup(t *testing.T, opts localgroup.Options) *localgroup.Group {
	t.Helper()
	opts.Binary = binary
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	g, err := localgroup.Create(ctx, opts)
	if err != nil {
		t.Fatalf("start group: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range g.Members {
				t.Logf("--- log of %s ---\n%s", m.Name, tail(m.Log(), 6000))
			}
		}
		if err := g.Close(); err != nil {
			t.Errorf("stop group: %v", err)
		}
	})
	return g
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
