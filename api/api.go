// Package api serves mirrorkv's HTTPS client API: the key-value routes, the group's status,
// membership, metrics and health. It identifies the client by its verified certificate,
// checks the access level that certificate carries, and renders every failure through one place
// (Server.fail) as a wire.Error with a reason code and a fix.
package api

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Group is the replicated group as the API needs it; *cluster.Cluster implements it.
type Group interface {
	Apply(ctx context.Context, cmd store.Command) (store.Result, error)
	// ReadIndex returns once the local store is at least as recent as the group's commit
	// index at the time of the call: a read after it is linearizable.
	ReadIndex(ctx context.Context) error
	Status(ctx context.Context) (wire.Status, error)
	Members(ctx context.Context) ([]wire.Member, error)
	// The admin operations run on the primary only; elsewhere they fail with reason
	// NotPrimary (503), naming the primary, and the client asks the next member.
	AddMember(ctx context.Context, m wire.Member) error
	// PrimaryURL is the client URL of the primary as this member knows it, or "".
	PrimaryURL() string
	RemoveMember(ctx context.Context, name string) error
	Promote(ctx context.Context, name string) error
	TransferLeadership(ctx context.Context, to string) error
	// Backup takes a consistent copy of the store on the primary, once every write
	// committed before the call is applied; elsewhere it fails with reason NotPrimary.
	Backup(ctx context.Context) (store.Snapshot, error)
	// Prefer makes name the preferred primary; "" withdraws the preference.
	Prefer(ctx context.Context, name string) error
}

// Reader reads this member's own copy of the store; *store.Store implements it.
type Reader interface {
	Get(key string) (store.KV, error)
	List(r store.Range) ([]store.KV, bool, error)
	Revision() int64
}

// Defaults for Config's zero values.
const (
	DefaultMaxKeyBytes   = 1024
	DefaultMaxValueBytes = 1 << 20
	DefaultListLimit     = 100
	DefaultMaxListLimit  = 10000
	DefaultHealthTimeout = 2 * time.Second
	// DefaultMaxListBytes bounds the keys and values of one listing response.
	DefaultMaxListBytes = 4 << 20
	// DefaultMaxTxnOps bounds the compares, and the writes of each branch, of a transaction.
	DefaultMaxTxnOps = 128
	// DefaultMaxTxnBytes bounds the body of a transaction.
	DefaultMaxTxnBytes = 4 << 20
	// DefaultMaxReadBytesInFlight bounds the bytes all listings and large values being
	// served hold at once: 16 full listings.
	DefaultMaxReadBytesInFlight = 64 << 20
	// DefaultReadWait is how long a large read waits for room before it is refused.
	DefaultReadWait = time.Second
	// DefaultLargeReadTimeout bounds how long a large read may take to reach its client.
	DefaultLargeReadTimeout = 30 * time.Second
	// maxMemberBodyBytes bounds a POST /v1/members body; a member record is a few hundred
	// bytes.
	maxMemberBodyBytes = 64 << 10
)

// Config tunes the API. The zero value of every field but Node is a safe default.
type Config struct {
	Node          string        // this member's name, sent as X-Mirrorkv-Member
	Group         string        // the group's name, sent with a backup as X-Mirrorkv-Group
	MaxKeyBytes   int           // longest key in bytes (default 1 KiB)
	MaxValueBytes int64         // largest value in bytes (default 1 MiB); larger gets 413
	ListLimit     int           // keys per listing when ?limit is absent (default 100)
	MaxListLimit  int           // largest ?limit accepted (default 10000)
	HealthTimeout time.Duration // how long /healthz waits for the group's status (default 2 s)
	// MaxListBytes bounds the keys and values of one listing (default 4 MiB, at most
	// MaxReadBytesInFlight): the listing stops before the key that would pass it, with more
	// and next set, and always holds at least one key.
	MaxListBytes int
	// MaxReadBytesInFlight bounds the bytes that listings (MaxListBytes each) and values of
	// 64 KiB or more being served hold at once on this member (default 64 MiB). A read that
	// finds no room within ReadWait gets 503 with reason Busy and Retry-After: 1.
	MaxReadBytesInFlight int64
	// MaxReadBytesPerClient bounds the part of MaxReadBytesInFlight that the reads of one
	// client certificate (by subject DN) hold at once (default a quarter, and at least one
	// listing of MaxListBytes), so that one client cannot take every other client's room:
	// past it, its next large read gets 503 Busy at once.
	MaxReadBytesPerClient int64
	ReadWait              time.Duration // how long a large read waits for room (default 1 s)
	// LargeReadTimeout bounds how long a listing or a large value may take to be written to
	// its client (default 30 s): a client that reads slower is cut off, so that it cannot
	// keep the read's bytes for as long as it likes.
	LargeReadTimeout time.Duration
	// MaxWatchers bounds the watches (GET /v1/watch) this member serves at once (default
	// 1024); one more gets 429 with reason WatchTooMany.
	MaxWatchers int
	// WatchBuffer bounds the bytes of events one watcher holds that its connection has not
	// taken yet (default 256 KiB); a watcher that leaves it full for WatchSlowTimeout
	// (default 5 s) is cut off with reason WatchSlow.
	WatchBuffer      int
	WatchSlowTimeout time.Duration
	// WatchProgressInterval is how long a watch stays silent before the member sends a
	// progress line (default 5 s).
	WatchProgressInterval time.Duration
	// MaxTxnOps bounds the compares, and the writes of each branch, of one POST /v1/txn
	// (default 128); more gets 400 with reason TxnTooManyOps.
	MaxTxnOps int
	// MaxTxnBytes bounds the body of one POST /v1/txn (default 4 MiB); a larger one gets 413
	// with reason TxnTooLarge. Each value in it is also bound by MaxValueBytes.
	MaxTxnBytes int64
	// MaxLeases bounds the leases the group holds (default 10000): a grant past it gets 429
	// with reason TooManyLeases. The primary's store counts, so the bound holds however many
	// grants race; each member's own setting applies to the grants it takes.
	MaxLeases int
	// Trust is the member's own TLS material for the /v1/tls routes (admin only); nil
	// leaves those routes out.
	Trust Trust
}

func (c Config) withDefaults() Config {
	if c.MaxKeyBytes <= 0 {
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.MaxTxnBytes <= 0 {
		c.MaxTxnBytes = DefaultMaxTxnBytes
	}
	if c.MaxLeases <= 0 {
		c.MaxLeases = DefaultMaxLeases
	}
	if c.MaxListLimit <= 0 {
		c.MaxListLimit = DefaultMaxListLimit
	}
	if c.ListLimit <= 0 || c.ListLimit > c.MaxListLimit {
		c.ListLimit = min(DefaultListLimit, c.MaxListLimit)
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.MaxReadBytesInFlight <= 0 {
		c.MaxReadBytesInFlight = DefaultMaxReadBytesInFlight
	}
	if c.MaxListBytes <= 0 {
		c.MaxListBytes = DefaultMaxListBytes
	}
	c.MaxListBytes = int(min(int64(c.MaxListBytes), c.MaxReadBytesInFlight))
	if c.MaxReadBytesPerClient <= 0 {
		c.MaxReadBytesPerClient = max(c.MaxReadBytesInFlight/4, int64(c.MaxListBytes))
	}
	c.MaxReadBytesPerClient = min(c.MaxReadBytesPerClient, c.MaxReadBytesInFlight)
	if c.ReadWait <= 0 {
		c.ReadWait = DefaultReadWait
	}
	if c.LargeReadTimeout <= 0 {
		c.LargeReadTimeout = DefaultLargeReadTimeout
	}
	c.MaxWatchers = cmp.Or(max(c.MaxWatchers, 0), DefaultMaxWatchers)
	c.WatchBuffer = cmp.Or(max(c.WatchBuffer, 0), DefaultWatchBuffer)
	c.WatchSlowTimeout = cmp.Or(max(c.WatchSlowTimeout, 0), DefaultWatchSlowTimeout)
	c.WatchProgressInterval = cmp.Or(max(c.WatchProgressInterval, 0), DefaultWatchProgressInterval)
	return c
}

// Server is the API of one member.
type Server struct {
	cfg     Config
	grp     Group
	local   Reader
	log     *slog.Logger
	metrics *metrics
	reads   *readGate
	watches *watchers
	mux     *http.ServeMux
	// Header values set on many responses, made once: a header map may share them because
	// nothing appends to or edits a response's header values after they are set.
	member, octetStream, staleTrue []string

	// writers recycles the per-request statusWriter; bufs holds buffers for chunked bodies
	// and JSON answers. Both keep allocation off the request path.
	writers sync.Pool
	bufs    sync.Pool
}

// New builds the API. reg receives the API's metrics and is served on /metrics; nil gives
// the API a registry of its own.
func New(cfg Config, grp Group, local Reader, reg *prometheus.Registry, log *slog.Logger) *Server {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:         cfg,
		grp:         grp,
		local:       local,
		log:         log,
		metrics:     newMetrics(reg),
		reads:       newReadGate(cfg.MaxReadBytesInFlight, cfg.MaxReadBytesPerClient, cfg.ReadWait, reg),
		watches:     newWatchers(reg),
		mux:         http.NewServeMux(),
		member:      []string{cfg.Node},
		octetStream: []string{"application/octet-stream"},
		staleTrue:   []string{"true"},
	}
	s.writers.New = func() any { return new(statusWriter) }
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.routes(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.uiRoutes(reg)
	return s
}

func (s *Server) routes(metricsHandler http.Handler) {
	s.route("PUT /v1/kv/{key...}", "kv", levelReadWrite, s.putKV)
	s.route("GET /v1/kv/{key...}", "kv", levelReadOnly, s.getKV)
	s.route("DELETE /v1/kv/{key...}", "kv", levelReadWrite, s.deleteKV)
	s.route("GET /v1/kv/{$}", "kv-list", levelReadOnly, s.listKV)
	s.route("GET /v1/watch", "watch", levelReadOnly, s.watch)
	s.route("POST /v1/txn", "txn", levelReadWrite, s.txn)
	s.leaseRoutes()
	s.route("GET /v1/status", "status", levelReadOnly, s.status)
	s.route("GET /v1/members", "members", levelReadOnly, s.members)
	s.route("POST /v1/members", "members", levelAdmin, s.addMember)
	s.route("DELETE /v1/members/{name}", "member", levelAdmin, s.removeMember)
	s.route("POST /v1/members/{name}/promote", "member-promote", levelAdmin, s.promote)
	s.route("POST /v1/members/{name}/transfer", "member-transfer", levelAdmin, s.transfer)
	s.route("POST /v1/members/{name}/prefer", "member-prefer", levelAdmin, s.prefer)
	s.route("DELETE /v1/preferred", "preferred", levelAdmin, s.unprefer)
	s.route("POST /v1/crl", "crl", levelAdmin, s.pushCRL)
	s.route("GET /v1/backup", "backup", levelAdmin, s.backup)
	s.trustRoutes()
	s.route("GET /healthz", "healthz", levelReadOnly, s.healthz)
	s.route("GET /metrics", "metrics", levelReadOnly, func(w http.ResponseWriter, r *http.Request) error {
		metricsHandler.ServeHTTP(w, r)
		return nil
	})
	s.route("/", "unmatched", levelReadOnly, s.notFound)
}

// handlerFunc is an API handler: it writes a success itself and returns a failure for
// Server.fail to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route registers h behind identity, permission, metrics and the one error renderer.
func (s *Server) route(pattern, label string, need level, h handlerFunc) {
	obs := s.metrics.route(label)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := s.writers.Get().(*statusWriter)
		*rw = statusWriter{ResponseWriter: w}
		if err := s.authorize(r, need); err != nil {
			s.fail(rw, r, err)
		} else if err := h(rw, r); err != nil {
			s.fail(rw, r, err)
		}
		obs.observe(r.Method, rw.code(), time.Since(start))
		*rw = statusWriter{} // drop the reference to the connection's writer
		s.writers.Put(rw)
	})
}

// Handler returns the API's root handler.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP rejects unclean key paths before the mux sees them: the mux would answer them
// with a redirect, and a client that follows it would write to another key.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()[wire.HeaderServedBy] = s.member
	if err := checkKVPath(r.URL.Path); err != nil {
		rw := &statusWriter{ResponseWriter: w}
		s.fail(rw, r, err)
		s.metrics.route("kv").observe(r.Method, rw.code(), 0)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// notFound answers paths no route matches, and methods a path does not allow (405).
func (s *Server) notFound(_ http.ResponseWriter, r *http.Request) error {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "/" && pat != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		return &Error{Status: http.StatusMethodNotAllowed, Allow: allowed,
			Msg: r.Method + " is not allowed on " + r.URL.Path}
	}
	return &Error{Status: http.StatusNotFound, Msg: "no such endpoint: " + r.URL.Path,
		Fix: "see docs/api.md for the routes; keys live under /v1/kv/"}
}

// statusWriter records the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitBody is http.MaxBytesReader on the server's own writer: only that one can be told
// that the body was too large, which makes the server close the connection instead of
// reading the rest of a huge body.
func limitBody(w http.ResponseWriter, r *http.Request, n int64) io.ReadCloser {
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter
	}
	return http.MaxBytesReader(w, r.Body, n)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
