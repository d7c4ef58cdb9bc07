package node

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
)

// startDebugNode starts a member with --debug-listen addr and returns it with its log.
func startDebugNode(t *testing.T, addr string) (*Node, Config, *syncBuffer) {
	t.Helper()
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	cfg := testMember(t, rca, cca, rca.Member("m1"))
	cfg.DebugListen = addr
	var logBuf syncBuffer
	n, err := New(cfg, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, cfg, &logBuf
}

// debugRequest sends one request; mod may set headers, Host or the body's content type.
func debugRequest(t *testing.T, c *http.Client, method, url string, mod func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// syncBuffer is a bytes.Buffer the member's goroutines may log to while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func header(kv ...string) func(*http.Request) {
	return func(r *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "Host" {
				r.Host = kv[i+1]
			} else {
				r.Header.Set(kv[i], kv[i+1])
			}
		}
	}
}

func TestNode_DebugListen(t *testing.T) {
	n, cfg, logBuf := startDebugNode(t, "127.0.0.1:0")
	base := "http://" + n.debug.Addr().String()
	_, port, _ := net.SplitHostPort(n.debug.Addr().String())
	tokenPath := filepath.Join(cfg.Dir, debugTokenFile)
	data, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatalf("read the token: %v", err)
	}
	token := strings.TrimSpace(string(data))
	bearer := "Bearer " + token
	c := http.DefaultClient

	t.Run("token file", func(t *testing.T) {
		fi, err := os.Stat(tokenPath)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", tokenPath, mode)
		}
		if len(token) < 20 {
			t.Errorf("token %q is too short", token)
		}
		if log := logBuf.String(); strings.Contains(log, token) || !strings.Contains(log, tokenPath) {
			t.Errorf("the start log must name the token file and never hold the token:\n%s", log)
		}
	})
	t.Run("index", func(t *testing.T) {
		code, body := debugRequest(t, c, http.MethodGet, base+"/debug/pprof/", header("Authorization", bearer))
		if code != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Fatalf("GET /debug/pprof/ = %d %.200q, want 200 listing the profiles", code, body)
		}
	})
	t.Run("rates", func(t *testing.T) {
		for query, want := range map[string]int{"block=0&mutex=0": http.StatusNoContent, "block=-1": http.StatusBadRequest} {
			if code, _ := debugRequest(t, c, http.MethodPost, base+"/debug/pprof/rates?"+query, header("Authorization", bearer)); code != want {
				t.Errorf("POST rates?%s = %d, want %d", query, code, want)
			}
		}
	})
	for _, tc := range []struct {
		name   string
		method string
		mod    func(*http.Request)
		want   int
	}{
		{"no token", http.MethodGet, nil, http.StatusUnauthorized},
		{"wrong token", http.MethodGet, header("Authorization", "Bearer "+strings.Repeat("0", len(token))), http.StatusUnauthorized},
		{"token not as bearer", http.MethodGet, header("Authorization", token), http.StatusUnauthorized},
		{"POST without token", http.MethodPost, nil, http.StatusUnauthorized},
		{"rebound host name", http.MethodGet, header("Authorization", bearer, "Host", "attacker.example:"+port), http.StatusForbidden},
		{"loopback on another port", http.MethodGet, header("Authorization", bearer, "Host", "127.0.0.1:1"), http.StatusForbidden},
		{"routable IP", http.MethodGet, header("Authorization", bearer, "Host", "10.1.2.3:"+port), http.StatusForbidden},
		{"from a web page", http.MethodGet, header("Authorization", bearer, "Origin", "https://attacker.example"), http.StatusForbidden},
		{"form POST", http.MethodPost, header("Authorization", bearer, "Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType},
		{"multipart POST", http.MethodPost, header("Authorization", bearer, "Content-Type", "multipart/form-data; boundary=x"), http.StatusUnsupportedMediaType},
		{"text POST", http.MethodPost, header("Authorization", bearer, "Content-Type", "text/plain;charset=UTF-8"), http.StatusUnsupportedMediaType},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			url := base + "/debug/pprof/"
			if tc.method == http.MethodPost {
				url = base + "/debug/pprof/rates?block=1"
			}
			if code, body := debugRequest(t, c, tc.method, url, tc.mod); code != tc.want {
				t.Fatalf("%s = %d %q, want %d", tc.name, code, body, tc.want)
			}
		})
	}
	t.Run("localhost host name", func(t *testing.T) {
		if code, _ := debugRequest(t, c, http.MethodGet, base+"/debug/pprof/", header("Authorization", bearer, "Host", "localhost:"+port)); code != http.StatusOK {
			t.Fatalf("Host localhost:%s = %d, want 200", port, code)
		}
	})
	t.Run("not on the client port", func(t *testing.T) {
		if n.http.Handler == nil {
			t.Fatal("no client handler")
		}
		req, _ := http.NewRequest(http.MethodGet, "/debug/pprof/", nil)
		if h, pattern := http.DefaultServeMux.Handler(req); pattern != "" {
			t.Fatalf("DefaultServeMux serves /debug/pprof/ (%T): the handlers must stay on the debug mux", h)
		}
	})
	t.Run("closed with the node", func(t *testing.T) {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.Get(base + "/debug/pprof/"); err == nil {
			resp.Body.Close()
			t.Fatal("debug port still answers after Close")
		}
		if _, err := os.Stat(tokenPath); err == nil {
			t.Error("the token file outlives the node")
		}
	})
}

func TestNode_DebugListenUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug.sock")
	n, cfg, _ := startDebugNode(t, "unix:"+sock)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want a socket with mode 0600", sock, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, debugTokenFile)); err == nil {
		t.Error("a token was written for a unix socket, which needs none")
	}
	if ents, _ := os.ReadDir(filepath.Dir(sock)); len(ents) != 1 {
		t.Errorf("%s holds %d entries, want the socket only", filepath.Dir(sock), len(ents))
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(c.CloseIdleConnections)
	if code, _ := debugRequest(t, c, http.MethodGet, "http://localhost/debug/pprof/", nil); code != http.StatusOK {
		t.Errorf("GET over the socket without a token = %d, want 200", code)
	}
	if code, _ := debugRequest(t, c, http.MethodGet, "http://attacker.example/debug/pprof/", nil); code != http.StatusForbidden {
		t.Errorf("GET over the socket for another host = %d, want 403", code)
	}
	if code, _ := debugRequest(t, c, http.MethodPost, "http://localhost/debug/pprof/rates?block=0", header("Content-Type", "text/plain")); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain POST over the socket = %d, want 415", code)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Error("the socket outlives the node")
	}
}

func TestListenUnixPrivate_Stale(t *testing.T) {
	dir := t.TempDir()
	t.Run("socket of a member that is gone", func(t *testing.T) {
		sock := filepath.Join(dir, "gone.sock")
		old, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		old.(*net.UnixListener).SetUnlinkOnClose(false)
		old.Close()
		ln, err := listenUnixPrivate(sock)
		if err != nil {
			t.Fatalf("replace a stale socket: %v", err)
		}
		ln.Close()
	})
	t.Run("live socket", func(t *testing.T) {
		sock := filepath.Join(dir, "live.sock")
		live, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if ln, err := listenUnixPrivate(sock); err == nil {
			ln.Close()
			t.Fatal("took over a socket another process listens on")
		}
	})
	t.Run("regular file", func(t *testing.T) {
		path := filepath.Join(dir, "file")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if ln, err := listenUnixPrivate(path); err == nil {
			ln.Close()
			t.Fatal("replaced a regular file")
		}
	})
}
