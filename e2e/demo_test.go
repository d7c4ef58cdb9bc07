package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The demo brings a group up, and every command it prints then works as printed, in another
// shell whose PATH has no mirrorkv: the first one, `source demo.env`, provides it. The
// kill -9 it suggests is followed by a new primary, and Ctrl-C stops the members.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	demo := exec.Command(binary, "demo", "--dir", dir, "--duration", "5m")
	out := &lockedBuffer{}
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	demo.Stderr = out
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = demo.Process.Kill(); _ = demo.Wait() })
	commands := make(chan []string, 1)
	go readDemoCommands(io.TeeReader(stdout, out), commands)
	var cmds []string
	select {
	case cmds = <-commands:
	case <-time.After(90 * time.Second):
		t.Fatalf("the demo printed no commands in 90 s:\n%s", out.String())
	}
	for _, want := range []string{`read  greeting="hello from mirrorkv"`, "PRIMARY"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if len(cmds) < 6 || !strings.HasPrefix(cmds[0], "source ") {
		t.Fatalf("the demo printed %d commands, want `source …` and five more:\n%s", len(cmds), out.String())
	}
	source := cmds[0]
	shell := func(timeout time.Duration, command string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		sh := exec.CommandContext(ctx, "bash", "-c", source+"\n"+command)
		sh.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
		b, err := sh.CombinedOutput()
		return string(b), err
	}
	if b, err := shell(10*time.Second, "command -v mirrorkv"); err != nil || !strings.HasPrefix(b, dir) {
		t.Fatalf("after %s, mirrorkv is %q (%v), want the demo's copy under %s", source, b, err, dir)
	}
	var killed string
	for _, c := range cmds[1:] {
		switch {
		case strings.Contains(c, "status --watch"):
			// It runs until interrupted: give it a few refreshes.
			b, err := shell(4*time.Second, c)
			if !strings.Contains(b, "PRIMARY") {
				t.Fatalf("%s: %v\n%s", c, err, b)
			}
		case strings.HasPrefix(c, "kill -9 "):
			b, err := shell(10*time.Second, c)
			if err != nil {
				t.Fatalf("%s: %v\n%s", c, err, b)
			}
			killed = strings.TrimSpace(strings.SplitN(c, "#", 2)[1])
			killed = strings.Fields(killed)[0]
			killed = strings.TrimSuffix(killed, ",")
		default:
			b, err := shell(30*time.Second, c)
			if err != nil {
				t.Fatalf("%s: %v\n%s", c, err, b)
			}
			if strings.Contains(c, "kv get colour") && !strings.Contains(b, "blue") {
				t.Fatalf("%s printed no blue:\n%s", c, b)
			}
		}
	}
	if killed == "" {
		t.Fatal("the demo suggested no kill -9 of the primary")
	}
	eventually(t, 30*time.Second, "a new primary after "+killed+" was killed", func() error {
		b, err := shell(10*time.Second, "mirrorkv status")
		if err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		for line := range strings.Lines(b) {
			if strings.Contains(line, "PRIMARY") && !strings.Contains(line, killed) {
				return nil
			}
		}
		return fmt.Errorf("no primary but %s:\n%s", killed, b)
	})
	if err := demo.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := demo.Wait(); err != nil {
		t.Fatalf("the demo, interrupted: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "stopping the members") {
		t.Fatalf("the demo did not say it stopped the members:\n%s", out.String())
	}
}

// readDemoCommands sends the commands the demo suggests, with their comments, once it has
// printed them all, and then drains r.
func readDemoCommands(r io.Reader, commands chan<- []string) {
	sc := bufio.NewScanner(r)
	var cmds []string
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "The group is up"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			cmds = append(cmds, strings.TrimSpace(line))
		case in:
			in = false
			commands <- cmds
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// lockedBuffer is a bytes.Buffer that a process's output and a test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
