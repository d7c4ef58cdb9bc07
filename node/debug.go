package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// debugServer serves the runtime's profiles on its own listener, apart from the client
// port: a unix socket only the member's user can connect to, or a loopback TCP port that
// asks for a bearer token (debugAccess). The handlers are written here on runtime/pprof
// rather than taken from net/http/pprof, whose import registers them on
// http.DefaultServeMux as a side effect; the paths and parameters are net/http/pprof's.
type debugServer struct {
	ln        net.Listener
	srv       *http.Server
	tokenPath string // TCP only: removed at stop
}

// checkDebugListen refuses an address that is neither unix:PATH nor HOST:PORT with a
// loopback IP host.
func checkDebugListen(addr string) error {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		if path == "" {
			return fmt.Errorf("--debug-listen %q: want unix:PATH, the path of a socket to create", addr)
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--debug-listen %q: want unix:PATH or HOST:PORT: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--debug-listen %q: use unix:PATH (preferred), or a loopback IP such as 127.0.0.1:6060 and reach it over ssh", addr)
	}
	return nil
}

func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/{$}", profileIndex)
	mux.HandleFunc("GET /debug/pprof/{name}", namedProfile)
	mux.HandleFunc("GET /debug/pprof/profile", cpuProfile)
	mux.HandleFunc("GET /debug/pprof/trace", executionTrace)
	mux.HandleFunc("POST /debug/pprof/rates", setProfileRates)
	return mux
}

func profileIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "profile?seconds=N\ntrace?seconds=N\nPOST rates?block=NANOS&mutex=FRACTION")
	for _, p := range pprof.Profiles() {
		fmt.Fprintf(w, "%s?debug=0|1|2 (%d)\n", p.Name(), p.Count())
	}
}

// namedProfile writes a runtime/pprof profile: ?debug=N as pprof.Profile.WriteTo, ?gc=1 runs
// a collection first (for heap).
func namedProfile(w http.ResponseWriter, r *http.Request) {
	p := pprof.Lookup(r.PathValue("name"))
	if p == nil {
		http.Error(w, "unknown profile: see /debug/pprof/", http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if r.URL.Query().Get("gc") != "" {
		runtime.GC()
	}
	if debug == 0 {
		w.Header().Set("Content-Type", "application/octet-stream")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	_ = p.WriteTo(w, debug)
}

// profileSeconds is ?seconds=N, 30 by default as in net/http/pprof.
func profileSeconds(r *http.Request) time.Duration {
	if n, err := strconv.Atoi(r.URL.Query().Get("seconds")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 30 * time.Second
}

func cpuProfile(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		http.Error(w, fmt.Sprintf("start CPU profile: %v (is another one running?)", err), http.StatusConflict)
		return
	}
	sleepCtx(r, profileSeconds(r))
	pprof.StopCPUProfile()
}

func executionTrace(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := trace.Start(w); err != nil {
		http.Error(w, fmt.Sprintf("start trace: %v (is another one running?)", err), http.StatusConflict)
		return
	}
	sleepCtx(r, profileSeconds(r))
	trace.Stop()
}

func sleepCtx(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// setProfileRates sets the block and mutex profile rates, off by default because they cost
// on every contended lock: ?block=NANOS (runtime.SetBlockProfileRate) and ?mutex=FRACTION
// (runtime.SetMutexProfileFraction); 0 turns either off again.
func setProfileRates(w http.ResponseWriter, r *http.Request) {
	for name, set := range map[string]func(int){
		"block": runtime.SetBlockProfileRate,
		"mutex": func(n int) { runtime.SetMutexProfileFraction(n) },
	} {
		v := r.URL.Query().Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("%s=%q: want a non-negative integer", name, v), http.StatusBadRequest)
			return
		}
		set(n)
	}
	w.WriteHeader(http.StatusNoContent)
}

// startDebug listens on addr and serves the profiling handlers until stop; dir is the data
// directory, where the TCP form's token is written.
func startDebug(addr, dir string) (*debugServer, error) {
	if err := checkDebugListen(addr); err != nil {
		return nil, err
	}
	ln, access, tokenPath, err := listenDebug(addr, dir)
	if err != nil {
		return nil, err
	}
	access.next = debugMux()
	d := &debugServer{ln: ln, tokenPath: tokenPath,
		srv: &http.Server{Handler: access, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

// Addr is the address the debug port listens on.
func (d *debugServer) Addr() net.Addr { return d.ln.Addr() }

func (d *debugServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if d.tokenPath != "" {
		_ = os.Remove(d.tokenPath) // a token nobody checks any more
	}
	if err := d.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// A CPU profile or trace in progress holds its conn open; cut it.
		return d.srv.Close()
	}
	return nil
}

// logStart says where the profiles are and how to authenticate, never the token itself.
func (d *debugServer) logStart(log *slog.Logger) {
	if d.tokenPath == "" {
		log.Info("profiling endpoint open on a unix socket only this user can connect to",
			"socket", d.ln.Addr().String(), "try", "curl --unix-socket "+d.ln.Addr().String()+" http://localhost/debug/pprof/")
		return
	}
	log.Warn("profiling endpoint open on loopback TCP; requests need the bearer token in the token file (unix:PATH needs none)",
		"addr", "http://"+d.ln.Addr().String()+"/debug/pprof/", "token_file", d.tokenPath)
}
