package cli

import (
	"crypto/tls"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/node"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/store"
)

// serveFlag is one serve flag: a value to give it, what the field it binds to must then
// hold, and the field's value when the flag is not given (the owning package's constant).
type serveFlag struct {
	value     string
	want, def any
	field     func(node.Config, serveOptions) any
}

var serveFlags = map[string]serveFlag{
	"config":     {"m.conf", "m.conf", "", func(_ node.Config, o serveOptions) any { return o.ConfigFile }},
	"log-level":  {"debug", "debug", "info", func(_ node.Config, o serveOptions) any { return o.LogLevel }},
	"log-format": {"json", "json", "text", func(_ node.Config, o serveOptions) any { return o.LogFormat }},

	"name":             {"m9", "m9", "", func(c node.Config, _ serveOptions) any { return c.Name }},
	"group":            {"g2", "g2", pki.DefaultGroup, func(c node.Config, _ serveOptions) any { return c.Group }},
	"dir":              {"/d", "/d", "", func(c node.Config, _ serveOptions) any { return c.Dir }},
	"member-listen":    {"a:1", "a:1", "", func(c node.Config, _ serveOptions) any { return c.MemberListen }},
	"member-advertise": {"b:1", "b:1", "", func(c node.Config, _ serveOptions) any { return c.MemberAdvertise }},
	"client-listen":    {"c:1", "c:1", "", func(c node.Config, _ serveOptions) any { return c.ClientListen }},
	"client-advertise": {"https://d:1", "https://d:1", "", func(c node.Config, _ serveOptions) any { return c.ClientAdvertise }},
	"member-cert":      {"m.crt", "m.crt", "", func(c node.Config, _ serveOptions) any { return c.MemberTLS.CertFile }},
	"member-key":       {"m.key", "m.key", "", func(c node.Config, _ serveOptions) any { return c.MemberTLS.KeyFile }},
	"member-ca":        {"mca.crt", "mca.crt", "", func(c node.Config, _ serveOptions) any { return c.MemberTLS.CAFile }},
	"member-crl":       {"m.crl", "m.crl", "", func(c node.Config, _ serveOptions) any { return c.MemberTLS.CRLFile }},
	"client-ca":        {"cca.crt", "cca.crt", "", func(c node.Config, _ serveOptions) any { return c.ClientTLS.CAFile }},
	"client-crl":       {"c.crl", "c.crl", "", func(c node.Config, _ serveOptions) any { return c.ClientTLS.CRLFile }},
	"no-member-crl":    {"true", true, false, func(c node.Config, _ serveOptions) any { return c.NoMemberCRL }},
	"no-client-crl":    {"true", true, false, func(c node.Config, _ serveOptions) any { return c.NoClientCRL }},
	"policy":           {"ca", mtls.PolicyCA, mtls.PolicyDN, func(c node.Config, _ serveOptions) any { return c.MemberTLS.Policy }},
	"min-tls":          {"1.2", uint16(tls.VersionTLS12), uint16(tls.VersionTLS13), func(c node.Config, _ serveOptions) any { return c.MemberTLS.MinVersion }},
	"allow-public-ca":  {"true", true, false, func(c node.Config, _ serveOptions) any { return c.AllowPublicCA }},
	"join-pin":         {"CN=m1,sha256:ab", []string{"CN=m1", "sha256:ab"}, []string(nil), func(c node.Config, _ serveOptions) any { return c.MemberTLS.JoinPins }},
	"debug-listen":     {"unix:/s", "unix:/s", "", func(c node.Config, _ serveOptions) any { return c.DebugListen }},

	"store-flush-interval":  {"250ms", 250 * time.Millisecond, node.DefaultStoreFlushInterval, func(c node.Config, _ serveOptions) any { return c.StoreFlushInterval }},
	"reload-interval":       {"9s", 9 * time.Second, node.DefaultReloadInterval, func(c node.Config, _ serveOptions) any { return c.ReloadInterval }},
	"max-handshakes":        {"5", 5, mtls.DefaultMaxHandshakes, func(c node.Config, _ serveOptions) any { return c.MaxHandshakes }},
	"max-handshakes-per-ip": {"3", 3, mtls.DefaultMaxHandshakesPerIP, func(c node.Config, _ serveOptions) any { return c.MaxHandshakesPerIP }},

	"bootstrap":          {"true", true, false, func(c node.Config, _ serveOptions) any { return c.Cluster.Bootstrap }},
	"join":               {"a:1,b:1", []string{"a:1", "b:1"}, []string(nil), func(c node.Config, _ serveOptions) any { return c.Cluster.Join }},
	"log-store":          {"bolt", cluster.LogStoreBolt, "", func(c node.Config, _ serveOptions) any { return c.Cluster.LogStore }},
	"election-timeout":   {"1500ms", 1500 * time.Millisecond, cluster.DefaultElectionTimeout, func(c node.Config, _ serveOptions) any { return c.Cluster.ElectionTimeout }},
	"heartbeat-timeout":  {"700ms", 700 * time.Millisecond, cluster.DefaultHeartbeatTimeout, func(c node.Config, _ serveOptions) any { return c.Cluster.HeartbeatTimeout }},
	"snapshot-threshold": {"99", uint64(99), uint64(cluster.DefaultSnapshotThreshold), func(c node.Config, _ serveOptions) any { return c.Cluster.SnapshotThreshold }},
	"prefer-hold-down":   {"4s", 4 * time.Second, cluster.DefaultPreferHoldDown, func(c node.Config, _ serveOptions) any { return c.Cluster.PreferHoldDown }},
	"snapshot-interval":  {"7s", 7 * time.Second, cluster.DefaultSnapshotInterval, func(c node.Config, _ serveOptions) any { return c.Cluster.SnapshotInterval }},
	// 0 lets cluster derive it from the snapshot threshold.
	"trailing-logs": {"33", uint64(33), uint64(0), func(c node.Config, _ serveOptions) any { return c.Cluster.TrailingLogs }},

	"max-txn-ops":               {"7", 7, api.DefaultMaxTxnOps, func(c node.Config, _ serveOptions) any { return c.API.MaxTxnOps }},
	"max-leases":                {"7", 7, api.DefaultMaxLeases, func(c node.Config, _ serveOptions) any { return c.API.MaxLeases }},
	"max-value-bytes":           {"66", int64(66), int64(api.DefaultMaxValueBytes), func(c node.Config, _ serveOptions) any { return c.API.MaxValueBytes }},
	"max-list-bytes":            {"77", 77, api.DefaultMaxListBytes, func(c node.Config, _ serveOptions) any { return c.API.MaxListBytes }},
	"max-read-bytes-in-flight":  {"88", int64(88), int64(api.DefaultMaxReadBytesInFlight), func(c node.Config, _ serveOptions) any { return c.API.MaxReadBytesInFlight }},
	"max-read-bytes-per-client": {"44", int64(44), int64(0), func(c node.Config, _ serveOptions) any { return c.API.MaxReadBytesPerClient }},

	"watch-history":           {"55", int64(55), int64(store.DefaultChangeRetention), func(c node.Config, _ serveOptions) any { return c.WatchHistory }},
	"max-watchers":            {"12", 12, api.DefaultMaxWatchers, func(c node.Config, _ serveOptions) any { return c.API.MaxWatchers }},
	"watch-buffer":            {"4096", 4096, api.DefaultWatchBuffer, func(c node.Config, _ serveOptions) any { return c.API.WatchBuffer }},
	"watch-slow-timeout":      {"3s", 3 * time.Second, api.DefaultWatchSlowTimeout, func(c node.Config, _ serveOptions) any { return c.API.WatchSlowTimeout }},
	"watch-progress-interval": {"2s", 2 * time.Second, api.DefaultWatchProgressInterval, func(c node.Config, _ serveOptions) any { return c.API.WatchProgressInterval }},
}

// parseServeFlags binds serve's flags to a fresh config and parses argv into it.
func parseServeFlags(t *testing.T, argv ...string) (*pflag.FlagSet, node.Config, serveOptions) {
	t.Helper()
	var cfg node.Config
	var o serveOptions
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	bindServeFlags(fs, &cfg, &o)
	if err := fs.Parse(argv); err != nil {
		t.Fatalf("parse %q: %v", argv, err)
	}
	return fs, cfg, o
}

func TestServe_FlagsBindToTheirFields(t *testing.T) {
	fs, _, _ := parseServeFlags(t)
	fs.VisitAll(func(fl *pflag.Flag) {
		if _, ok := serveFlags[fl.Name]; !ok {
			t.Errorf("serve --%s has no row in serveFlags: add the field it binds to", fl.Name)
		}
	})
	for name, tc := range serveFlags {
		t.Run(name, func(t *testing.T) {
			if fs.Lookup(name) == nil {
				t.Fatalf("serve has no --%s", name)
			}
			_, cfg, o := parseServeFlags(t, "--"+name+"="+tc.value)
			if got := tc.field(cfg, o); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("--%s %s sets its field to %#v, want %#v", name, tc.value, got, tc.want)
			}
		})
	}
}

func TestServe_FlagDefaultsAreTheOwnersConstants(t *testing.T) {
	fs, cfg, o := parseServeFlags(t)
	for name, tc := range serveFlags {
		if got := tc.field(cfg, o); !reflect.DeepEqual(got, tc.def) {
			t.Errorf("--%s defaults to %#v, want %#v", name, got, tc.def)
		}
	}
	// pflag prints the default itself; a default written into the usage as well drifts.
	fs.VisitAll(func(fl *pflag.Flag) {
		if strings.Contains(fl.Usage, "default") {
			t.Errorf("--%s usage repeats a default: %q", fl.Name, fl.Usage)
		}
	})
}

func TestServe_MinTLSRefusesOlderVersions(t *testing.T) {
	var cfg node.Config
	var o serveOptions
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	bindServeFlags(fs, &cfg, &o)
	if err := fs.Parse([]string{"--min-tls", "1.1"}); err == nil || !strings.Contains(err.Error(), "older versions are never allowed") {
		t.Fatalf("--min-tls 1.1: %v; want a refusal", err)
	}
}
