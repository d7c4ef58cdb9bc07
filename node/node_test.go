package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/wire"
)

func TestConfig_Validate(t *testing.T) {
	good := Config{Name: "m1", Dir: "d", MemberListen: "127.0.0.1:7001", ClientListen: "127.0.0.1:8001",
		MemberTLS: mtls.Config{CertFile: "m.crt", KeyFile: "m.key", CAFile: "ca.crt", CRLFile: "crl.pem"},
		ClientTLS: mtls.Config{CAFile: "client-ca.crt", CRLFile: "client-crl.pem"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"missing name", func(c *Config) { c.Name = "" }, "--name is required"},
		{"bad name", func(c *Config) { c.Name = "m 1" }, "--name"},
		{"bad group", func(c *Config) { c.Group = "a/b" }, "--group"},
		{"bad listen", func(c *Config) { c.MemberListen = "7001" }, "--member-listen"},
		{"bad advertise URL", func(c *Config) { c.ClientAdvertise = "http://x:1" }, "https:// URL"},
		{"bad policy", func(c *Config) { c.MemberTLS.Policy = "any" }, "--policy"},
		{"old TLS", func(c *Config) { c.MemberTLS.MinVersion = tls.VersionTLS11 }, "older versions are never allowed"},
		{"flush interval too long", func(c *Config) { c.StoreFlushInterval = time.Minute }, "--store-flush-interval 1m0s: want between 1ms and 10s"},
		{"flush interval too short", func(c *Config) { c.StoreFlushInterval = time.Microsecond }, "--store-flush-interval 1µs"},
		{"flush interval negative", func(c *Config) { c.StoreFlushInterval = -time.Second }, "--store-flush-interval -1s"},
		{"bootstrap and join", func(c *Config) { c.Cluster.Bootstrap = true; c.Cluster.Join = []string{"x:1"} }, "exclude each other"},
		{"shared CA under policy ca", func(c *Config) { c.MemberTLS.Policy = mtls.PolicyCA; c.ClientTLS.CAFile = c.MemberTLS.CAFile }, "client certificate as a member"},
		{"shared CA under policy dn", func(c *Config) { c.MemberTLS.Policy = mtls.PolicyDN; c.ClientTLS.CAFile = c.MemberTLS.CAFile }, "separate client CA"},
		{"no client CRL", func(c *Config) { c.ClientTLS.CRLFile = "" }, "--client-crl is required"},
		{"no member CRL", func(c *Config) { c.MemberTLS.CRLFile = "" }, "--member-crl is required"},
		{"CRL and no CRL", func(c *Config) { c.NoClientCRL = true }, "exclude each other"},
		{"join without a pin", func(c *Config) { c.Cluster.Join = []string{"127.0.0.1:7001"} }, "--join needs --join-pin"},
		{"malformed pin", func(c *Config) {
			c.Cluster.Join, c.MemberTLS.JoinPins = []string{"127.0.0.1:7001"}, []string{"sha256:abc"}
		}, "64 hex digits"},
		{"debug on all interfaces", func(c *Config) { c.DebugListen = ":6060" }, "--debug-listen"},
		{"debug on a routable IP", func(c *Config) { c.DebugListen = "10.0.0.1:6060" }, "a loopback IP"},
		{"debug on a host name", func(c *Config) { c.DebugListen = "localhost:6060" }, "a loopback IP"},
		{"debug on a unix socket without a path", func(c *Config) { c.DebugListen = "unix:" }, "want unix:PATH"},
		{"unknown log store", func(c *Config) { c.Cluster.LogStore = "sqlite" }, "--log-store"},
		{"election below heartbeat", func(c *Config) {
			c.Cluster.ElectionTimeout, c.Cluster.HeartbeatTimeout = 500*time.Millisecond, time.Second
		}, "--election-timeout"},
		{"negative handshake cap", func(c *Config) { c.MaxHandshakesPerIP = -1 }, "--max-handshakes-per-ip -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	noCRL := good
	noCRL.MemberTLS.CRLFile, noCRL.ClientTLS.CRLFile, noCRL.NoMemberCRL, noCRL.NoClientCRL = "", "", true, true
	if err := noCRL.Validate(); err != nil {
		t.Fatalf("running without CRLs when asked to explicitly: %v", err)
	}
	pinned := good
	pinned.Cluster.Join, pinned.MemberTLS.JoinPins = []string{"127.0.0.1:7001"}, []string{"CN=m1,O=example", "sha256:" + strings.Repeat("ab", 32)}
	if err := pinned.Validate(); err != nil {
		t.Fatalf("join with pins: %v", err)
	}
	missing := Config{}
	if err := missing.Validate(); err == nil || strings.Count(err.Error(), "is required") < 8 {
		t.Fatalf("empty config reports %v; want every missing flag at once", err)
	}
}

func TestClaimDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := claimDir(dir, "m1", "g"); err != nil {
		t.Fatalf("claim a new directory: %v", err)
	}
	if err := claimDir(dir, "m1", "g"); err != nil {
		t.Fatalf("claim our own directory again: %v", err)
	}
	for _, tc := range []struct{ name, group, want string }{
		{"m2", "g", `holds member "m1" of group "g"`},
		{"m1", "other", `holds member "m1" of group "g"`},
	} {
		err := claimDir(dir, tc.name, tc.group)
		if !errors.Is(err, ErrForeignDir) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("claim as %s of %s = %v; want ErrForeignDir naming the owner", tc.name, tc.group, err)
		}
	}
	stray := t.TempDir()
	if err := os.Chmod(stray, 0o700); err != nil { // t.TempDir follows the umask
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stray, "store.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := claimDir(stray, "m1", "g"); !errors.Is(err, ErrForeignDir) {
		t.Errorf("claim a non-empty directory without %s = %v; want ErrForeignDir", identityFile, err)
	}
	if err := os.WriteFile(filepath.Join(dir, identityFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := claimDir(dir, "m1", "g"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("claim with a damaged %s = %v; want an error saying so", identityFile, err)
	}
}

func TestSourceAddr(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.3:7001": "127.0.0.3", "[::1]:7001": "::1", "0.0.0.0:7001": "", ":7001": "", "host:7001": "", "bad": ""} {
		got := sourceAddr(in)
		if (got == nil) != (want == "") || (got != nil && got.IP.String() != want) {
			t.Errorf("sourceAddr(%q) = %v, want %q", in, got, want)
		}
	}
}

// testMember is the files and ports of one member for New.
func testMember(t *testing.T, rca, cca *pkitest.CA, leaf *pkitest.Leaf) Config {
	t.Helper()
	return Config{
		Name: leaf.Cert.Subject.CommonName, Dir: filepath.Join(t.TempDir(), "data"),
		MemberListen: freeAddr(t), ClientListen: freeAddr(t),
		MemberTLS: mtls.Config{CertFile: leaf.CertPath, KeyFile: leaf.KeyPath, CAFile: rca.CertPath, CRLFile: rca.WriteCRL("crl.pem")},
		ClientTLS: mtls.Config{CAFile: cca.CertPath, CRLFile: cca.WriteCRL("crl.pem")},
		Cluster:   cluster.Config{Bootstrap: true, ElectionTimeout: 300 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond},
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// New fails closed: every broken credential stops the member with a message naming it, and
// leaves no port open.
func TestNew_RefusesBrokenCredentials(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"expired certificate", func(c *Config) {
			l := rca.Expired("m1")
			c.MemberTLS.CertFile, c.MemberTLS.KeyFile = l.CertPath, l.KeyPath
		}, "expired"},
		{"server-only certificate", func(c *Config) {
			l := rca.ServerOnly("m1")
			c.MemberTLS.CertFile, c.MemberTLS.KeyFile = l.CertPath, l.KeyPath
		}, "clientAuth"},
		{"key of another certificate", func(c *Config) { c.MemberTLS.KeyFile = rca.Member("other").KeyPath }, "key"},
		{"certificate of another CA", func(c *Config) { c.MemberTLS.CAFile = pkitest.NewCA(t, "other").CertPath }, "member port credentials"},
		{"member CA as the client CA", func(c *Config) { c.ClientTLS.CAFile = c.MemberTLS.CAFile }, "separate client CA"},
		{"member certificate of another group", func(c *Config) {
			l := rca.Issue(pkitest.Spec{CN: "m1", Group: "elsewhere"})
			c.MemberTLS.CertFile, c.MemberTLS.KeyFile = l.CertPath, l.KeyPath
		}, `group "elsewhere"`},
		{"missing client CA", func(c *Config) { c.ClientTLS.CAFile = filepath.Join(t.TempDir(), "none.crt") }, "none.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testMember(t, rca, cca, rca.Member("m1"))
			tt.mod(&cfg)
			n, err := New(cfg, nil)
			if err == nil {
				n.Close()
				t.Fatalf("New started with %s", tt.name)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tt.want)
			}
			for _, addr := range []string{cfg.MemberListen, cfg.ClientListen} {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s is still listening after a refused start", addr)
				}
			}
		})
	}
}

// One member bootstraps, serves the API over mutual TLS, and comes back from its data
// directory after a restart with its data.
func TestNode_ServesAndRestartsFromDisk(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	cfg := testMember(t, rca, cca, rca.Member("m1"))
	admin := cca.Issue(pkitest.Spec{CN: "admin", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []string{"urn:mirrorkv:access:admin"}})

	run := func(cfg Config) (stop func()) {
		n, err := New(cfg, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := run(cfg)
	tlsCfg, err := client.LoadTLS(rca.CertPath, admin.CertPath, admin.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoints: []string{"https://" + cfg.ClientListen}, TLS: tlsCfg, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitPrimary(t, c)
	rev, err := c.Put(t.Context(), "k", []byte("v"))
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	stop()
	storeFile := filepath.Join(cfg.Dir, "store.db")
	before, err := os.Stat(storeFile)
	if err != nil {
		t.Fatal(err)
	}

	cfg.Cluster.Bootstrap = false
	stop = run(cfg)
	defer stop()
	waitPrimary(t, c)
	got, gotRev, err := c.Get(t.Context(), "k")
	if err != nil || string(got) != "v" || gotRev != rev {
		t.Fatalf("after restart get k = %q rev %d, %v; want v rev %d", got, gotRev, err, rev)
	}
	// A restart replays the log tail into the same file; a restore would have swapped in
	// a new one.
	after, err := os.Stat(storeFile)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("the store file was replaced on restart: the member rebuilt its store instead of resuming it")
	}
}

func waitPrimary(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(t.Context())
		if err == nil && st.Role == wire.RolePrimary {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member not primary after 30s: %+v, %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// What New hands each part: the settings as given, with only what the member derives
// filled in.
func TestConfig_SubConfigs(t *testing.T) {
	c := Config{Name: "m1", Dir: "/d", MemberListen: "127.0.0.3:7001", ClientListen: "127.0.0.3:8001",
		MemberTLS:     mtls.Config{CertFile: "m.crt", KeyFile: "m.key", CAFile: "ca.crt", MinVersion: tls.VersionTLS12, JoinPins: []string{"CN=m0"}},
		ClientTLS:     mtls.Config{CAFile: "client-ca.crt", CRLFile: "client.crl"},
		AllowPublicCA: true, MaxHandshakes: 7, MaxHandshakesPerIP: 3,
		Cluster: cluster.Config{Join: []string{"127.0.0.1:7001"}, ElectionTimeout: time.Second, TrailingLogs: 9},
		API:     api.Config{MaxValueBytes: 5},
	}
	cc := c.clusterConfig("CN=m1")
	if cc.Name != "m1" || cc.Dir != filepath.Join("/d", "raft") || cc.Advertise != "127.0.0.3:7001" || cc.ClientURL != "https://127.0.0.3:8001" ||
		cc.DN != "CN=m1" || cc.GroupID != pki.DefaultGroup || cc.ElectionTimeout != time.Second || cc.TrailingLogs != 9 || len(cc.Join) != 1 {
		t.Errorf("clusterConfig = %+v", cc)
	}
	if ac := c.apiConfig(); ac.Node != "m1" || ac.MaxValueBytes != 5 {
		t.Errorf("apiConfig = %+v", ac)
	}
	m := c.memberTLS(nil)
	if m.Port != mtls.PortMember || m.CertFile != "m.crt" || m.MinVersion != tls.VersionTLS12 || m.Group != pki.DefaultGroup ||
		len(m.JoinAddrs) != 1 || len(m.JoinPins) != 1 || m.LocalAddr == nil || !m.AllowPublicCA || m.MaxHandshakes != 7 || m.MaxHandshakesPerIP != 3 {
		t.Errorf("memberTLS = %+v", m)
	}
	cl := c.clientTLS(nil)
	if cl.Port != mtls.PortClient || cl.CertFile != "m.crt" || cl.KeyFile != "m.key" || cl.CAFile != "client-ca.crt" || cl.CRLFile != "client.crl" ||
		cl.MinVersion != 0 || !cl.AllowPublicCA || cl.MaxHandshakes != 7 || cl.MaxHandshakesPerIP != 3 {
		t.Errorf("clientTLS = %+v", cl)
	}
}

// TestNode_CloseBeforeRun frees both ports of a member that never ran, so that it can start
// again at once.
func TestNode_CloseBeforeRun(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	cfg := testMember(t, rca, cca, rca.Member("m1"))
	cfg.Cluster.Bootstrap = true
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{cfg.ClientListen, cfg.MemberListen} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("after Close, %s is still taken: %v", addr, err)
		}
		ln.Close()
	}
}
