package node

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Defaults for Config's zero values.
const (
	DefaultReloadInterval = 2 * time.Second
	// shutdownGrace bounds how long Run waits for in-flight HTTP requests at shutdown.
	shutdownGrace = 5 * time.Second
)

// Node is one running member: its TLS sources, store, raft and API.
type Node struct {
	cfg       Config
	log       *slog.Logger
	memberSrc *mtls.Source
	clientSrc *mtls.Source
	store     *store.Store
	cluster   *cluster.Cluster
	http      *http.Server
	clientLn  net.Listener
	debug     *debugServer  // nil without Config.DebugListen
	crlKick   chan struct{} // the group's CRLs changed (crl.go)
	trustMu   sync.Mutex    // one change of the pushed TLS material at a time (tlsstore.go)

	closeOnce sync.Once
	closeErr  error
}

// New loads the credentials, opens the data directory and starts raft and the member
// port. Every problem stops it here with an error that names what to fix: a member never
// starts with weaker checks than configured. Run serves the client port.
func New(cfg Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Group = cfg.group()
	n := &Node{cfg: cfg, log: log, crlKick: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	if err := claimDir(cfg.Dir, cfg.Name, cfg.Group); err != nil {
		return nil, err
	}
	if cfg, err = usePushedTLS(cfg, log); err != nil {
		return nil, err
	}
	n.cfg = cfg
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tlsMetrics, err := mtls.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register TLS metrics: %w", err)
	}
	if err := n.loadCredentials(tlsMetrics); err != nil {
		return nil, err
	}
	dn, err := certDN(cfg.MemberTLS.CertFile)
	if err != nil {
		return nil, err
	}
	if n.store, err = store.Open(filepath.Join(cfg.Dir, storeFile), store.Options{
		Logger: log.With("component", "store"), FlushInterval: cmp.Or(cfg.StoreFlushInterval, DefaultStoreFlushInterval),
		OnCRL: n.crlChanged, ChangeRetention: cfg.WatchHistory,
	}); err != nil {
		return nil, err
	}
	n.applyGroupCRLs() // before the ports open: a restarted member enforces them at once
	memberLn, err := net.Listen("tcp", cfg.MemberListen)
	if err != nil {
		return nil, fmt.Errorf("listen on member port %s: %w (is another member or process using it?)", cfg.MemberListen, err)
	}
	nw := memberNetwork{Listener: n.memberSrc.Listen(memberLn), src: n.memberSrc}
	clusterCfg := cfg.clusterConfig(dn)
	clusterCfg.CertNotAfter, clusterCfg.Registerer, clusterCfg.TLSHealth = n.memberSrc.LeafNotAfter, reg, n.tlsHealth
	clusterCfg.TLSExpiries = n.tlsExpiries
	n.cluster, err = cluster.New(clusterCfg, n.store, nw, n.memberSrc, log.With("component", "cluster"))
	if err != nil {
		memberLn.Close()
		return nil, err
	}
	if cfg.DebugListen != "" {
		if n.debug, err = startDebug(cfg.DebugListen, cfg.Dir); err != nil {
			return nil, err
		}
		n.debug.logStart(log)
	}
	clientLn, err := net.Listen("tcp", cfg.ClientListen)
	if err != nil {
		return nil, fmt.Errorf("listen on client port %s: %w (is another member or process using it?)", cfg.ClientListen, err)
	}
	n.clientLn = n.clientSrc.HTTPSListener(clientLn)
	apiCfg := cfg.apiConfig()
	apiCfg.Trust = n
	apiServer := api.New(apiCfg, apiGroup{n.cluster, n}, n.store, reg, log.With("component", "api"))
	n.http = &http.Server{
		Handler:           apiServer.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// TLS and protocol noise from clients is debug detail, not an operator's concern.
		ErrorLog: slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelDebug),
		// The listener hands over finished TLS conns; an empty map keeps net/http from
		// negotiating HTTP/2 on its own.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	n.http.RegisterOnShutdown(apiServer.StopWatches) // watches would hold Shutdown for its grace
	log.Info("member started", "group", cfg.Group, "dn", dn, "member_addr", cfg.memberAdvertise(),
		"client_url", cfg.clientURL(), "policy", cfg.policy(), "log_store", n.cluster.LogStore())
	return n, nil
}

// loadCredentials builds the member and client TLS sources; any bad file stops the start.
func (n *Node) loadCredentials(metrics *mtls.Metrics) error {
	cfg := n.cfg
	if err := mtls.CheckSharedCA(cfg.MemberTLS.CAFile, cfg.ClientTLS.CAFile); err != nil {
		return flagFile(err, filepath.Join(cfg.Dir, tlsDir))
	}
	for port, none := range map[string]bool{"member": cfg.NoMemberCRL, "client": cfg.NoClientCRL} {
		if none {
			n.log.Warn("running without a CRL on this port: a revoked certificate keeps working until it expires",
				"port", port, "fix", "give --"+port+"-crl with the CA's crl.pem")
		}
	}
	var err error
	n.memberSrc, err = mtls.NewSource(cfg.memberTLS(metrics), n.log.With("component", "tls"))
	if err != nil {
		return fmt.Errorf("member port credentials: %w", flagFile(err, filepath.Join(cfg.Dir, tlsDir)))
	}
	n.clientSrc, err = mtls.NewSource(cfg.clientTLS(metrics), n.log.With("component", "tls"))
	if err != nil {
		return fmt.Errorf("client port credentials: %w", flagFile(err, filepath.Join(cfg.Dir, tlsDir)))
	}
	return nil
}

// Run serves the client API until ctx ends, watching the credential files for changes,
// then stops the member. It returns nil on a clean stop.
func (n *Node) Run(ctx context.Context) error {
	every := n.cfg.ReloadInterval
	if every <= 0 {
		every = DefaultReloadInterval
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go n.memberSrc.Watch(watchCtx, every)
	go n.clientSrc.Watch(watchCtx, every)
	go n.followCRLs(watchCtx)

	served := make(chan error, 1)
	go func() { served <- n.http.Serve(n.clientLn) }()
	var serveErr error
	select {
	case <-ctx.Done():
		n.log.Info("stopping member", "cause", context.Cause(ctx))
	case serveErr = <-served:
		serveErr = fmt.Errorf("serve client port %s: %w", n.cfg.ClientListen, serveErr)
	}
	return errors.Join(serveErr, n.Close())
}

// Reload re-reads every credential file now; on any error the old material stays in force.
// Each TLS source that refuses its new material logs and counts the refusal itself.
func (n *Node) Reload() error {
	return errors.Join(n.memberSrc.Reload(), n.clientSrc.Reload())
}

// Close stops the API, raft and the store, in that order, so that no request sees a closed
// store. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			if err := n.http.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs = append(errs, fmt.Errorf("shut down client port: %w", err))
			}
			cancel()
		}
		if n.clientLn != nil {
			// Shutdown closes only the listeners Serve was given: a member closed before
			// Run would keep its client port otherwise.
			n.clientLn.Close()
		}
		if n.cluster != nil {
			if err := n.cluster.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close store: %w", err))
			}
		}
		if n.debug != nil {
			if err := n.debug.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop debug port: %w", err))
			}
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// tlsHealth is the most urgent thing to act on in either port's trust material, for the
// status: whatever runs out first, or ran out first.
func (n *Node) tlsHealth() reason.Code {
	if es := n.tlsExpiries(); len(es) > 0 {
		return reason.Code(es[0].Reason.Code)
	}
	return reason.OK
}

// tlsExpiries is what runs out within 30 days, or has, in both ports' material, earliest
// first. The member certificate serves both ports and is listed once.
func (n *Node) tlsExpiries() []wire.Expiry {
	var out []wire.Expiry
	leafSeen := false
	for _, e := range slices.Concat(n.memberSrc.Expiries(), n.clientSrc.Expiries()) {
		if e.Material == mtls.MaterialLeaf {
			if leafSeen {
				continue
			}
			leafSeen = true
		}
		out = append(out, wire.Expiry{Port: e.Port.String(), Material: string(e.Material), Subject: e.Subject,
			At: e.At, Reason: wire.Reason{Code: int(e.Reason), Text: e.Reason.Text()}})
	}
	slices.SortStableFunc(out, func(a, b wire.Expiry) int { return a.At.Compare(b.At) })
	return out
}

// memberNetwork is the member port as the cluster sees it: authorised TLS conns both ways.
type memberNetwork struct {
	net.Listener
	src *mtls.Source
}

func (m memberNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return m.src.Dial(ctx, addr)
}

func (memberNetwork) PeerDN(conn net.Conn) (string, error) { return mtls.PeerDN(conn) }

// sourceAddr is the address member dials leave from: the member port's own IP when it
// listens on one, so that peers see the member at the address they know it by.
func sourceAddr(listen string) *net.TCPAddr {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return &net.TCPAddr{IP: ip}
}

// certDN is the canonical subject DN of the member certificate, recorded in the status so
// operators can see which DN each member must be authorised under.
func certDN(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read member certificate %s: %w", path, err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return "", fmt.Errorf("parse member certificate %s: %w", path, err)
	}
	return pki.DNOf(certs[0]), nil
}
