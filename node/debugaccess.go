package node

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// debugTokenFile holds, in the data directory, the bearer token of the debug port's TCP
// form. It is written 0600 at every start and removed at Close.
const debugTokenFile = "debug.token"

// unixPrefix marks a unix socket in --debug-listen.
const unixPrefix = "unix:"

// debugAccess guards the profiling handlers. Profiles show memory contents and rates change
// the runtime, so only the member's own user may reach them, and no web page the operator
// happens to open may reach them through the browser:
//
//   - on a unix socket (created 0600) the file mode decides who may connect;
//   - on loopback TCP, which every user of the host and every browser tab can reach, a
//     request needs the bearer token from DIR/debug.token (0600);
//   - either way the Host header must name localhost or a loopback IP (with the listener's
//     port on TCP), which defeats DNS rebinding, a request carrying an Origin header (only
//     browsers send one) is refused, and a POST may not have a content type a cross-site
//     form can send without a CORS preflight.
type debugAccess struct {
	token string // empty on a unix socket
	port  string // the TCP port the Host header must name; empty on a unix socket
	next  http.Handler
}

func (a debugAccess) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.hostAllowed(r.Host) {
		http.Error(w, "the debug port answers only requests for localhost or a loopback IP (Host header)", http.StatusForbidden)
		return
	}
	if r.Header.Get("Origin") != "" {
		http.Error(w, "the debug port refuses requests from web pages (Origin header)", http.StatusForbidden)
		return
	}
	if a.token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mirrorkv debug"`)
			http.Error(w, "send Authorization: Bearer TOKEN, with TOKEN from the file debug.token in the data directory", http.StatusUnauthorized)
			return
		}
	}
	if r.Method == http.MethodPost && formContentType(r.Header.Get("Content-Type")) {
		http.Error(w, "POST without a body, or with a content type a web form cannot send", http.StatusUnsupportedMediaType)
		return
	}
	a.next.ServeHTTP(w, r)
}

func (a debugAccess) hostAllowed(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, "80" // no port: the scheme's default
	}
	if a.port != "" && port != a.port {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// formContentType reports whether ct is one a browser sends cross-site without a preflight.
func formContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unparsable: refuse rather than guess what a browser made of it
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// listenDebug opens the debug listener for addr (HOST:PORT or unix:PATH). On TCP it also
// writes a new token to dir and returns it with the token file's path.
func listenDebug(addr, dir string) (ln net.Listener, access debugAccess, tokenPath string, err error) {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		ln, err = listenUnixPrivate(path)
		return ln, debugAccess{}, "", err
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, debugAccess{}, "", fmt.Errorf("listen on debug port %s: %w", addr, err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	token, tokenPath, err := writeDebugToken(dir)
	if err != nil {
		ln.Close()
		return nil, debugAccess{}, "", err
	}
	return ln, debugAccess{token: token, port: port}, tokenPath, nil
}

// writeDebugToken writes a new random token to dir/debug.token, mode 0600.
func writeDebugToken(dir string) (token, path string, err error) {
	token = rand.Text() // 128 random bits
	path = filepath.Join(dir, debugTokenFile)
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // left by a crash
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("write debug token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", "", fmt.Errorf("write debug token %s: %w", path, err)
	}
	return token, path, nil
}

// listenUnixPrivate listens on a unix socket at path that only this user can connect to,
// whatever the umask: the socket is bound in a new 0700 directory beside path, made 0600,
// and only then renamed to path, so it is never reachable under a wider mode. A socket left
// at path by a member that is gone is replaced; a live one, or any other file, is not.
func listenUnixPrivate(path string) (net.Listener, error) {
	if err := checkStaleSocket(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".mirrorkv-debug-")
	if err != nil {
		return nil, fmt.Errorf("listen on debug socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on debug socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it is unlinked by name at path in stop
	if err = os.Chmod(tmp, 0o600); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on debug socket %s: %w", path, err)
	}
	return unixListener{ul, path}, nil
}

// unixListener reports the path it was renamed to and unlinks it on Close.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l unixListener) Close() error {
	err := l.UnixListener.Close()
	_ = os.Remove(l.path)
	return err
}

func checkStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("debug socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("debug socket %s: a file that is not a socket is in the way; choose another path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("debug socket %s: another process is listening on it", path)
	}
	return nil // left by a member that is gone: the rename replaces it
}
