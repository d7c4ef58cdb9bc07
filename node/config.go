// Package node builds a mirrorkv member from its configuration: it loads the member and
// client TLS material, opens the store, starts raft over the member channel and the HTTPS API
// on the client port, and stops them in order. It owns nothing else: every part it wires is
// its own package.
package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/store"
)

// Write-behind of the store file (store.Options.FlushInterval): etcd's backend commits every
// 100 ms as well. The upper bound keeps what a restart must replay from the raft log small.
const (
	DefaultStoreFlushInterval = 100 * time.Millisecond
	maxStoreFlushInterval     = 10 * time.Second
)

// Config is everything a member needs to start. Each setting maps to one `serve` flag and
// one config-file key of the same name. The settings of a part that has its own package live
// in that package's Config (Cluster, API, MemberTLS, ClientTLS), bound to their flags
// directly, and New fills in only what it derives from the rest. The zero value of every
// optional field is safe.
type Config struct {
	Name  string // --name: unique member name, also the raft server ID
	Group string // --group: group name; the data directory records it and refuses another
	Dir   string // --dir: data directory (raft log, snapshots, store)

	MemberListen    string // --member-listen: address of the member port
	MemberAdvertise string // --member-advertise: address other members dial (default: member-listen)
	ClientListen    string // --client-listen: address of the HTTPS client port
	ClientAdvertise string // --client-advertise: URL clients use (default: https://client-listen)

	// MemberTLS is the member port's TLS: --member-cert, --member-key, --member-ca,
	// --member-crl, --policy (default dn), --min-tls (default TLS 1.3) and --join-pin (what
	// the member at a --join address must present before this member believes the
	// membership it answers: sha256:HEX or its subject DN, as `mirrorkv member add` prints
	// them; required with Cluster.Join). New fills in Role, Group, JoinAddrs (Cluster.Join),
	// LocalAddr, Metrics and the settings of both ports below.
	MemberTLS mtls.Config
	// ClientTLS is the client port's TLS: --client-ca and --client-crl. New fills in Role,
	// the member's certificate and key (they serve this port too), Metrics and the settings
	// of both ports below.
	ClientTLS mtls.Config
	// NoMemberCRL and NoClientCRL run a port without revocation, which must be asked for:
	// without a CRL a stolen certificate stays good until it expires.
	NoMemberCRL bool // --no-member-crl
	NoClientCRL bool // --no-client-crl

	// AllowPublicCA, MaxHandshakes and MaxHandshakesPerIP are one setting for both ports,
	// which New puts into MemberTLS and ClientTLS alike. AllowPublicCA accepts a CA that
	// the system also trusts; MaxHandshakes bounds the TLS handshakes in flight on each
	// port, MaxHandshakesPerIP those from one source IP; a connection over either is
	// closed before its handshake. 0 means mtls.DefaultMaxHandshakes and
	// mtls.DefaultMaxHandshakesPerIP.
	AllowPublicCA      bool // --allow-public-ca
	MaxHandshakes      int  // --max-handshakes
	MaxHandshakesPerIP int  // --max-handshakes-per-ip

	// StoreFlushInterval bounds how long applied writes may stay in memory before the store
	// file commits them (write-behind; the raft log already holds them durably). 0 means
	// DefaultStoreFlushInterval.
	StoreFlushInterval time.Duration // --store-flush-interval
	ReloadInterval     time.Duration // --reload-interval: how often credential files are checked

	// WatchHistory is how many of the latest revisions the store's change log keeps for
	// watches (store.Options.ChangeRetention); 0 means store.DefaultChangeRetention.
	WatchHistory int64 // --watch-history

	// DebugListen is the address of the profiling endpoint, empty for none: unix:PATH, a
	// socket only this user can connect to (preferred), or a loopback IP HOST:PORT, where
	// requests need the bearer token written to DIR/debug.token.
	DebugListen string // --debug-listen

	// Cluster holds the raft and replication settings: --bootstrap, --join, --log-store,
	// --election-timeout, --heartbeat-timeout, --snapshot-threshold, --snapshot-interval and
	// --trailing-logs. New fills in Name, Dir, Advertise, ClientURL, DN, GroupID and the
	// callbacks; whatever it holds there beforehand is ignored.
	Cluster cluster.Config
	// API holds the client API's limits: --max-value-bytes, --max-list-bytes and
	// --max-read-bytes-in-flight. New fills in Node.
	API api.Config
}

// clusterFlags names the serve flags of the settings cluster.Config.Validate checks.
const clusterFlags = "--log-store, --election-timeout, --heartbeat-timeout, --snapshot-threshold, --snapshot-interval, --trailing-logs"

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	need := func(v, flag string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("--%s is required", flag))
		}
	}
	need(c.Name, "name")
	need(c.Dir, "dir")
	need(c.MemberListen, "member-listen")
	need(c.ClientListen, "client-listen")
	need(c.MemberTLS.CertFile, "member-cert")
	need(c.MemberTLS.KeyFile, "member-key")
	need(c.MemberTLS.CAFile, "member-ca")
	need(c.ClientTLS.CAFile, "client-ca")
	if c.Group != "" && !validName(c.Group) {
		errs = append(errs, fmt.Errorf("--group %q: use letters, digits, '-', '_' and '.' only", c.Group))
	}
	if c.Name != "" && !validName(c.Name) {
		errs = append(errs, fmt.Errorf("--name %q: use letters, digits, '-', '_' and '.' only", c.Name))
	}
	for flag, addr := range map[string]string{"member-listen": c.MemberListen, "client-listen": c.ClientListen, "member-advertise": c.MemberAdvertise} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: want HOST:PORT: %w", flag, addr, err))
		}
	}
	if c.ClientAdvertise != "" {
		if u, err := url.Parse(c.ClientAdvertise); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("--client-advertise %q: want an https:// URL", c.ClientAdvertise))
		}
	}
	errs = append(errs, c.validateCluster()...)
	if c.StoreFlushInterval < 0 || (c.StoreFlushInterval > 0 && c.StoreFlushInterval < time.Millisecond) || c.StoreFlushInterval > maxStoreFlushInterval {
		errs = append(errs, fmt.Errorf("--store-flush-interval %v: want between 1ms and %v (0 for the default %v)", c.StoreFlushInterval, maxStoreFlushInterval, DefaultStoreFlushInterval))
	}
	if c.WatchHistory < 0 {
		errs = append(errs, fmt.Errorf("--watch-history %d: want a number of revisions, or 0 for the default %d", c.WatchHistory, store.DefaultChangeRetention))
	}
	if c.DebugListen != "" {
		if err := checkDebugListen(c.DebugListen); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Cluster.Bootstrap && len(c.Cluster.Join) > 0 {
		errs = append(errs, errors.New("--bootstrap and --join exclude each other: bootstrap the first member only, join the others"))
	}
	errs = append(errs, c.validateTLS()...)
	return errors.Join(errs...)
}

// validateTLS checks the settings of both ports.
func (c Config) validateTLS() []error {
	var errs []error
	switch c.MemberTLS.Policy {
	case "", mtls.PolicyCA, mtls.PolicyDN:
	default:
		errs = append(errs, fmt.Errorf("--policy %q: want ca or dn", c.MemberTLS.Policy))
	}
	switch c.MemberTLS.MinVersion {
	case 0, tls.VersionTLS12, tls.VersionTLS13:
	default:
		errs = append(errs, fmt.Errorf("--min-tls %s: want 1.3 or 1.2 (older versions are never allowed)", tls.VersionName(c.MemberTLS.MinVersion)))
	}
	if c.MaxHandshakes < 0 || c.MaxHandshakesPerIP < 0 {
		errs = append(errs, fmt.Errorf("--max-handshakes %d, --max-handshakes-per-ip %d: want positive numbers, or 0 for the defaults", c.MaxHandshakes, c.MaxHandshakesPerIP))
	}
	if c.MemberTLS.CAFile != "" && c.MemberTLS.CAFile == c.ClientTLS.CAFile {
		errs = append(errs, errors.New("--member-ca and --client-ca are the same file: a member certificate could pass as a client and a client certificate as a member; make a separate client CA with `mirrorkv ca init`"))
	}
	errs = append(errs, crlChoice("member", c.MemberTLS.CRLFile, c.NoMemberCRL), crlChoice("client", c.ClientTLS.CRLFile, c.NoClientCRL))
	if len(c.Cluster.Join) > 0 && len(c.MemberTLS.JoinPins) == 0 {
		errs = append(errs, errors.New("--join needs --join-pin: the DN or sha256 fingerprint of the member at the join address (`mirrorkv member add` prints it), so that this member does not take the membership from whoever answers there"))
	}
	for _, pin := range c.MemberTLS.JoinPins {
		if err := mtls.CheckPin(pin); err != nil {
			errs = append(errs, fmt.Errorf("--join-pin: %w", err))
		}
	}
	return errs
}

// memberTLS is c.MemberTLS with what the member derives filled in.
func (c Config) memberTLS(metrics *mtls.Metrics) mtls.Config {
	mc := c.bothPorts(c.MemberTLS, metrics)
	mc.Port, mc.Group, mc.JoinAddrs, mc.LocalAddr = mtls.PortMember, c.group(), c.Cluster.Join, sourceAddr(c.MemberListen)
	return mc
}

// clientTLS is c.ClientTLS with what the member derives filled in. The member certificate
// also serves the client port: clients verify it against the replication CA, and it needs
// serverAuth, which every member certificate has.
func (c Config) clientTLS(metrics *mtls.Metrics) mtls.Config {
	cc := c.bothPorts(c.ClientTLS, metrics)
	cc.Port, cc.CertFile, cc.KeyFile = mtls.PortClient, c.MemberTLS.CertFile, c.MemberTLS.KeyFile
	return cc
}

// bothPorts is t with the settings that cover both ports.
func (c Config) bothPorts(t mtls.Config, metrics *mtls.Metrics) mtls.Config {
	t.AllowPublicCA, t.MaxHandshakes, t.MaxHandshakesPerIP, t.Metrics = c.AllowPublicCA, c.MaxHandshakes, c.MaxHandshakesPerIP, metrics
	return t
}

// validateCluster checks the raft settings with cluster.Config.Validate, so that a bad mix
// (an election timeout below the heartbeat timeout, say) is a configuration error naming the
// flags to change rather than a failure to start raft. Name, Dir and the advertise address
// are checked above under their own flags; cluster sees stand-ins for them, so that it
// reports only what the raft flags can fix.
func (c Config) validateCluster() []error {
	cc := c.Cluster
	cc.Name, cc.Dir, cc.Advertise = "member", "raft", "127.0.0.1:0"
	err := cc.Validate()
	if err == nil {
		return nil
	}
	all := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		all = joined.Unwrap()
	}
	errs := make([]error, 0, len(all))
	for _, e := range all {
		errs = append(errs, fmt.Errorf("raft settings (%s): %w", clusterFlags, e))
	}
	return errs
}

// clusterConfig is c.Cluster with what the member derives from the rest of c filled in.
func (c Config) clusterConfig(dn string) cluster.Config {
	cc := c.Cluster
	cc.Name, cc.Dir, cc.Advertise = c.Name, filepath.Join(c.Dir, "raft"), c.memberAdvertise()
	cc.ClientURL, cc.DN, cc.GroupID = c.clientURL(), dn, c.group()
	return cc
}

// apiConfig is c.API with the member's name filled in.
func (c Config) apiConfig() api.Config {
	ac := c.API
	ac.Node, ac.Group = c.Name, c.group()
	return ac
}

func (c Config) group() string {
	if c.Group == "" {
		return pki.DefaultGroup
	}
	return c.Group
}

// crlChoice requires a CRL for a port unless running without one was asked for explicitly.
func crlChoice(port, file string, none bool) error {
	switch {
	case file == "" && !none:
		return fmt.Errorf("--%s-crl is required: without a CRL a revoked %s certificate keeps working until it expires; give the CA's crl.pem (`mirrorkv ca crl`), or --no-%s-crl to run without revocation", port, port, port)
	case file != "" && none:
		return fmt.Errorf("--%s-crl and --no-%s-crl exclude each other", port, port)
	}
	return nil
}

func (c Config) policy() mtls.Policy {
	if c.MemberTLS.Policy == "" {
		return mtls.PolicyDN
	}
	return c.MemberTLS.Policy
}

func (c Config) memberAdvertise() string {
	if c.MemberAdvertise != "" {
		return c.MemberAdvertise
	}
	return c.MemberListen
}

func (c Config) clientURL() string {
	if c.ClientAdvertise != "" {
		return c.ClientAdvertise
	}
	return "https://" + c.ClientListen
}

func validName(s string) bool {
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return len(s) <= 64
}
