package localgroup

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Member is one member process of a local group.
type Member struct {
	Name       string
	Host       string // loopback address the member binds, e.g. 127.0.0.2
	MemberAddr string // where the member port listens
	// AdvertiseAddr is where the others dial it, when that differs from MemberAddr (a
	// fault proxy in between); empty means MemberAddr.
	AdvertiseAddr string
	ClientAddr    string
	ClientURL     string
	Dir           string // data directory
	CertFile      string
	KeyFile       string
	DN            string
	Async         bool
	LogFile       string
	ExtraArgs     []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Advertise is the member address the others dial.
func (m *Member) Advertise() string {
	if m.AdvertiseAddr != "" {
		return m.AdvertiseAddr
	}
	return m.MemberAddr
}

// Running reports whether the member's process is alive (frozen counts as alive).
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Pid is the member's process id, 0 when it is not running.
func (m *Member) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *Member) start(binary string, args []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		select {
		case <-m.done:
		default:
			return fmt.Errorf("start member %s: already running", m.Name)
		}
	}
	logf, err := os.OpenFile(m.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open member log: %w", err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Ctrl-C on a demo reaches the demo, which then stops its
	// members in order, rather than every member at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start member %s: %w", m.Name, err)
	}
	done := make(chan struct{})
	m.cmd, m.done, m.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(done)
	}()
	return nil
}

func (m *Member) signal(sig syscall.Signal) error {
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("signal member %s: not started", m.Name)
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal member %s: %w", m.Name, err)
	}
	return nil
}

// wait waits for the process to exit or for the timeout.
func (m *Member) wait(timeout time.Duration) bool {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Kill stops the member at once with SIGKILL, as a crash would.
func (m *Member) Kill() error {
	if !m.Running() {
		return nil
	}
	_ = m.signal(syscall.SIGCONT) // a frozen process cannot die of SIGKILL until resumed by the kernel; be explicit
	if err := m.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !m.wait(10 * time.Second) {
		return fmt.Errorf("kill member %s: still running after SIGKILL", m.Name)
	}
	return nil
}

// Stop asks the member to shut down (SIGTERM) and kills it if it has not within timeout.
func (m *Member) Stop(timeout time.Duration) error {
	if !m.Running() {
		return nil
	}
	_ = m.signal(syscall.SIGCONT)
	if err := m.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if m.wait(timeout) {
		return nil
	}
	return m.Kill()
}

// Reload asks the member to re-read its credentials now (SIGHUP).
func (m *Member) Reload() error { return m.signal(syscall.SIGHUP) }

// Freeze suspends the member (SIGSTOP); Thaw resumes it.
func (m *Member) Freeze() error { return m.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen member.
func (m *Member) Thaw() error { return m.signal(syscall.SIGCONT) }

// ExitErr is how the member's last process ended, nil while it runs or after a clean exit.
func (m *Member) ExitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Log returns the member's log so far, for diagnosis.
func (m *Member) Log() string {
	b, err := os.ReadFile(m.LogFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// waitServing waits until m's client port answers /healthz over mutual TLS with tlsCfg: any
// HTTP answer, 503 from a member not yet in the group included, means the member passed
// its checks at start and serves. If m exits first, taken says which of its ports another
// process holds ("member" or "client"), found by binding it (EADDRINUSE), not by its log.
func (m *Member) waitServing(ctx context.Context, tlsCfg *tls.Config) (taken string, err error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		if !m.Running() {
			switch {
			case portTaken(m.ClientAddr):
				taken = "client"
			case portTaken(m.MemberAddr):
				taken = "member"
			}
			return taken, fmt.Errorf("%s exited before it started serving: %v", m.Name, m.ExitErr())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/healthz", nil)
		if err != nil {
			return "", fmt.Errorf("wait for %s to serve: %w", m.Name, err)
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for %s to serve: %w", m.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// portTaken reports whether another process holds addr.
func portTaken(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	ln.Close()
	return false
}

// freePort asks the kernel for a free TCP port on host. The port is released before the
// member binds it, so another process could take it meanwhile; on loopback in a test run
// that is rare, and the member then fails to start with a clear "address in use".
func freePort(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

func waitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to listen: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func mkdirs(paths ...string) error {
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Clean(p), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}
