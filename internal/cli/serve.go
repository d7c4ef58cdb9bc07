package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/node"
	"github.com/mirrorkv/mirrorkv/pki"
)

// serveOptions are serve's own flags; everything about the member is node.Config.
type serveOptions struct {
	ConfigFile string // --config
	LogLevel   string // --log-level
	LogFormat  string // --log-format
}

func newServeCmd(e *env) *cobra.Command {
	var cfg node.Config
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run a member of a mirrorkv group",
		Long: `Run a member: the member port carries replication (mutual TLS, member certificates
only), the client port carries the HTTPS API (client certificates required).

Every flag may also come from --config FILE, one "flag-name = value" per line. A flag on
the command line or in the environment (see mirrorkv help) wins over the file.

A bad credential stops the member at start with one line that says what to fix: mirrorkv
never falls back to plaintext or to weaker checks. Credentials are reloaded when their files
change and on SIGHUP.`,
		Example: `  mirrorkv serve --name m1 --dir data/m1 --bootstrap \
    --member-listen 127.0.0.1:7001 --client-listen 127.0.0.1:8001 \
    --member-cert m1.crt --member-key m1.key --member-ca ca.crt --member-crl crl.pem \
    --client-ca client-ca.crt --client-crl client-crl.pem`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := fillFromFile(cmd.Flags(), o.ConfigFile); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageError{fmt.Errorf("serve configuration:\n%w", err)}
			}
			log, err := newLogger(e, o.LogLevel, o.LogFormat)
			if err != nil {
				return err
			}
			return serve(e, cfg, log.With("member", cfg.Name))
		},
	}
	bindServeFlags(cmd.Flags(), &cfg, &o)
	return cmd
}

// bindServeFlags binds each serve flag to the field it names, in o or in cfg and the
// sub-configs cfg hands to the packages that own them. A default is the owning package's
// constant, which pflag shows in the help.
func bindServeFlags(f *pflag.FlagSet, cfg *node.Config, o *serveOptions) {
	f.StringVar(&o.ConfigFile, "config", "", "read flags from `FILE`, one \"flag-name = value\" per line")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&cfg.Name, "name", "", "unique member name; the CN of its certificate by convention")
	f.StringVar(&cfg.Dir, "dir", "", "data `DIR` (raft log, snapshots, store)")
	f.StringVar(&cfg.MemberListen, "member-listen", "", "member port `HOST:PORT` (replication, mutual TLS)")
	f.StringVar(&cfg.MemberAdvertise, "member-advertise", "", "member address other members dial; empty: --member-listen")
	f.StringVar(&cfg.ClientListen, "client-listen", "", "client port `HOST:PORT` (HTTPS API)")
	f.StringVar(&cfg.ClientAdvertise, "client-advertise", "", "`URL` clients use to reach this member; empty: https:// and --client-listen")
	f.StringVar(&cfg.MemberTLS.CertFile, "member-cert", "", "member certificate `FILE` (serverAuth and clientAuth)")
	f.StringVar(&cfg.MemberTLS.KeyFile, "member-key", "", "member private key `FILE`")
	f.StringVar(&cfg.MemberTLS.CAFile, "member-ca", "", "replication CA bundle `FILE` (may hold the old and the new CA)")
	f.StringVar(&cfg.MemberTLS.CRLFile, "member-crl", "", "CRL `FILE` of the replication CA (required unless --no-member-crl)")
	f.StringVar(&cfg.ClientTLS.CAFile, "client-ca", "", "CA `FILE` of client certificates (a CA of its own, never the replication CA)")
	f.StringVar(&cfg.ClientTLS.CRLFile, "client-crl", "", "CRL `FILE` of the client CA (required unless --no-client-crl)")
	f.BoolVar(&cfg.NoMemberCRL, "no-member-crl", false, "run the member port without a CRL (unsafe: a revoked member certificate keeps working)")
	f.BoolVar(&cfg.NoClientCRL, "no-client-crl", false, "run the client port without a CRL (unsafe: a revoked client certificate keeps working)")
	f.StringVar((*string)(&cfg.MemberTLS.Policy), "policy", string(mtls.PolicyDN), "member authorisation: dn (authorised subject DNs only) or ca (any member cert of the CA)")
	f.Var(newTLSVersion(&cfg.MemberTLS.MinVersion, tls.VersionTLS13), "min-tls", "minimum TLS version on the member port: 1.3 or 1.2")
	f.BoolVar(&cfg.AllowPublicCA, "allow-public-ca", false, "accept a replication or client CA that the system trust store also holds (unsafe: any certificate it signs becomes a member or a client)")
	f.BoolVar(&cfg.Cluster.Bootstrap, "bootstrap", false, "start a new group with this member as its first primary")
	f.StringSliceVar(&cfg.Cluster.Join, "join", nil, "member `ADDRS` of an existing group to learn its members from")
	f.StringSliceVar(&cfg.MemberTLS.JoinPins, "join-pin", nil, "`PIN` of the member at a --join address: its DN or sha256:FINGERPRINT, as `mirrorkv member add` prints it (required with --join)")
	f.StringVar(&cfg.Group, "group", pki.DefaultGroup, "group `NAME`; a data directory of another group, and a member certificate of another group (its urn:mirrorkv:group: URI), are refused")
	f.StringVar(&cfg.DebugListen, "debug-listen", "", "serve the Go profiles (net/http/pprof paths) on `unix:PATH`, a socket only this user can reach (preferred), or on loopback HOST:PORT with the bearer token from DIR/debug.token")
	f.StringVar(&cfg.Cluster.LogStore, "log-store", "", "raft log store: wal (one fsync per append) or bolt (two); empty: what the data directory holds, wal for a new one")
	f.DurationVar(&cfg.StoreFlushInterval, "store-flush-interval", node.DefaultStoreFlushInterval, "longest time applied writes stay in memory before the store file commits them; the raft log holds them meanwhile")
	f.DurationVar(&cfg.Cluster.ElectionTimeout, "election-timeout", cluster.DefaultElectionTimeout, "time without a primary before an election; at least --heartbeat-timeout")
	f.DurationVar(&cfg.Cluster.HeartbeatTimeout, "heartbeat-timeout", cluster.DefaultHeartbeatTimeout, "time without contact before a follower suspects the primary")
	f.DurationVar(&cfg.Cluster.PreferHoldDown, "prefer-hold-down", cluster.DefaultPreferHoldDown, "how long a primary keeps the role, and the preferred member (mirrorkv member prefer) must be in sync, before the role moves to it; doubled for each recent change of primary")
	f.Uint64Var(&cfg.Cluster.SnapshotThreshold, "snapshot-threshold", cluster.DefaultSnapshotThreshold, "log entries between snapshots")
	f.DurationVar(&cfg.Cluster.SnapshotInterval, "snapshot-interval", cluster.DefaultSnapshotInterval, "how often the snapshot threshold is checked")
	f.Uint64Var(&cfg.Cluster.TrailingLogs, "trailing-logs", 0, "log entries kept after a snapshot, for lagging members; 0: 1.25 × --snapshot-threshold")
	f.DurationVar(&cfg.ReloadInterval, "reload-interval", node.DefaultReloadInterval, "how often credential files are checked for changes")
	bindWatchFlags(f, cfg)
	f.IntVar(&cfg.API.MaxListBytes, "max-list-bytes", api.DefaultMaxListBytes, "bytes of keys and values in one listing response; a longer listing continues with ?start=")
	f.Int64Var(&cfg.API.MaxReadBytesInFlight, "max-read-bytes-in-flight", api.DefaultMaxReadBytesInFlight, "bytes that listings and values of 64 KiB or more may hold at once; past it reads get 503 Busy")
	f.Int64Var(&cfg.API.MaxReadBytesPerClient, "max-read-bytes-per-client", 0, "the part of --max-read-bytes-in-flight one client certificate's reads may hold at once; 0: a quarter of it, and at least --max-list-bytes")
	f.Int64Var(&cfg.API.MaxValueBytes, "max-value-bytes", api.DefaultMaxValueBytes, "largest value in bytes a client may write")
	f.IntVar(&cfg.API.MaxTxnOps, "max-txn-ops", api.DefaultMaxTxnOps, "compares, and writes in each branch, of one transaction (POST /v1/txn); more get 400")
	f.IntVar(&cfg.API.MaxLeases, "max-leases", api.DefaultMaxLeases, "leases the group may hold; a grant past it gets 429 (reason 421)")
	f.IntVar(&cfg.MaxHandshakes, "max-handshakes", mtls.DefaultMaxHandshakes, "TLS handshakes in flight on each port; more are closed before their handshake")
	f.IntVar(&cfg.MaxHandshakesPerIP, "max-handshakes-per-ip", mtls.DefaultMaxHandshakesPerIP, "TLS handshakes in flight on each port from one source IP")
}

// tlsVersion is the value of a TLS version flag: 1.3 or 1.2, the only versions mirrorkv
// speaks.
type tlsVersion struct{ v *uint16 }

func newTLSVersion(p *uint16, def uint16) *tlsVersion {
	*p = def
	return &tlsVersion{p}
}

func (t *tlsVersion) Set(s string) error {
	switch s {
	case "1.3":
		*t.v = tls.VersionTLS13
	case "1.2":
		*t.v = tls.VersionTLS12
	default:
		return errors.New("want 1.3 or 1.2 (older versions are never allowed)")
	}
	return nil
}

func (t *tlsVersion) String() string {
	if t.v == nil || *t.v == 0 {
		return ""
	}
	return strings.TrimPrefix(tls.VersionName(*t.v), "TLS ")
}

func (t *tlsVersion) Type() string { return "version" }

// fillFromFile gives every flag that neither the command line nor the environment set (both
// mark it changed) its value from the config file.
func fillFromFile(fs *pflag.FlagSet, configFile string) error {
	if configFile == "" {
		return nil
	}
	fromFile, err := readConfigFile(configFile)
	if err != nil {
		return err
	}
	for key := range fromFile {
		if fs.Lookup(key) == nil || key == "config" {
			return usagef("config file %s: unknown setting %q (settings are serve's flag names)", configFile, key)
		}
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		for _, v := range fromFile[fl.Name] {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %w", configFile, err))
			}
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

func readConfigFile(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	settings, err := parseConfig(data)
	if err != nil {
		return nil, usagef("config file %s: %w", path, err)
	}
	return settings, nil
}

// parseConfig decodes a config file: one "flag-name = value" per line, the name with or
// without its "--", the value with or without double quotes; blank lines and lines that
// start with # are ignored. A flag named twice keeps both values, in order (for --join).
// A line without "=" is a *configLineError.
func parseConfig(data []byte) (map[string][]string, error) {
	out := map[string][]string{}
	n := 0
	for raw := range strings.Lines(string(data)) {
		n++
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &configLineError{Line: n, Text: line}
		}
		key = strings.TrimPrefix(strings.TrimSpace(key), "--")
		out[key] = append(out[key], strings.Trim(strings.TrimSpace(value), `"`))
	}
	return out, nil
}

// configLineError is a config file line that is not "flag-name = value"; parseConfig
// returns it.
type configLineError struct {
	Line int    // from 1
	Text string // the line without its surrounding spaces
}

func (e *configLineError) Error() string {
	return fmt.Sprintf("line %d: want \"flag-name = value\", got %q", e.Line, e.Text)
}

func newLogger(e *env, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// serve runs the member until the context ends; SIGHUP reloads its credentials.
func serve(e *env, cfg node.Config, log *slog.Logger) error {
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
			case <-e.ctx.Done():
				return
			}
			reloadOnHUP(n, log)
		}
	}()
	return n.Run(e.ctx)
}

// reloadOnHUP reloads r's credentials. It does not log a refusal: the TLS source that
// refuses new material logs and counts it, with its role and reason, once.
func reloadOnHUP(r interface{ Reload() error }, log *slog.Logger) {
	if err := r.Reload(); err != nil {
		return // logged and counted by the source; the old credentials stay in force
	}
	log.Info("credentials reloaded on SIGHUP")
}
