package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/history"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// The lifecycle workload: many clients over a modest key space, half linearizable reads and
// half puts of unique values, every call recorded for porcupine.
const (
	lifecycleClients = 64
	lifecycleKeys    = 32
	// lifecycleTimeout bounds one client call, failover included. It is above the Go
	// client's default (10s) because 64 clients and four race-built members share two cores
	// here while the members reload their TLS material; a call that still runs out of it is
	// a failure of the test.
	lifecycleTimeout = 20 * time.Second
)

// The phases of the lifecycle, which the workload counts its calls by.
const (
	phaseWarmup = iota
	phaseMemberCA
	phaseClientCA
	phaseRenewal
	phaseRevocation
	phaseCount
)

var phaseNames = [phaseCount]string{"warm-up", "member CA rotation", "client CA rotation", "renewal", "revocation"}

// sharedClient is the client the workers use, with the calls in flight on it, so that the
// test can close it once the workers have moved to another.
type sharedClient struct {
	c        *client.Client
	inFlight atomic.Int64
}

// lifecycleLoad runs the workers and records their calls.
type lifecycleLoad struct {
	rec      *history.Recorder
	cur      atomic.Pointer[sharedClient]
	phase    atomic.Int32
	ok       [phaseCount]atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	failures []string // the first few failed calls, with their errors
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func startLifecycleLoad(t *testing.T, c *client.Client) *lifecycleLoad {
	l := &lifecycleLoad{rec: history.NewRecorder(), stop: make(chan struct{})}
	l.cur.Store(&sharedClient{c: c})
	seed := time.Now().UnixNano()
	t.Logf("workload seed %d", seed)
	for id := range lifecycleClients {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(id)))
		l.wg.Go(func() { l.run(id, rng) })
	}
	t.Cleanup(l.finish) // a test that fails half-way must not leave clients running
	return l
}

// finish stops the workers and waits for them.
func (l *lifecycleLoad) finish() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *lifecycleLoad) run(id int, rng *rand.Rand) {
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		default:
		}
		key := fmt.Sprintf("life/k%d", rng.IntN(lifecycleKeys))
		sc := l.acquire()
		var err error
		if rng.IntN(2) == 0 {
			err = l.get(sc.c, id, key)
		} else {
			err = l.put(sc.c, id, key, fmt.Sprintf("c%d-%d", id, seq))
		}
		sc.inFlight.Add(-1)
		if err != nil {
			l.fail(id, key, err)
		} else {
			l.ok[l.phase.Load()].Add(1)
		}
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	}
}

// acquire returns the current client, counted in flight until the caller is done with it.
func (l *lifecycleLoad) acquire() *sharedClient {
	for {
		sc := l.cur.Load()
		sc.inFlight.Add(1)
		if l.cur.Load() == sc {
			return sc
		}
		sc.inFlight.Add(-1)
	}
}

// switchTo hands the workers c, waits until no call runs on the previous client and closes it.
func (l *lifecycleLoad) switchTo(t *testing.T, c *client.Client) {
	t.Helper()
	old := l.cur.Swap(&sharedClient{c: c})
	eventually(t, 2*lifecycleTimeout, "the calls on the previous client end", func() error {
		if n := old.inFlight.Load(); n > 0 {
			return fmt.Errorf("%d calls in flight", n)
		}
		return nil
	})
	old.c.Close()
}

func (l *lifecycleLoad) fail(id int, key string, err error) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, fmt.Sprintf("client %d, %s, %s: %v", id, key, phaseNames[l.phase.Load()], err))
	}
}

// get is a linearizable read, recorded; an error leaves its outcome unknown.
func (l *lifecycleLoad) get(c *client.Client, id int, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), lifecycleTimeout)
	defer cancel()
	p := l.rec.Begin(id, history.Get, key, "", "")
	v, _, err := c.Get(ctx, key)
	switch {
	case err == nil:
		p.End(history.Output{Found: true, Value: string(v)})
	case client.IsNotFound(err):
		p.End(history.Output{})
		err = nil
	default:
		p.End(history.Output{Unknown: true})
	}
	return err
}

// put writes a unique value, recorded as the fault tests record writes: a definite refusal
// did not apply, any other error may have.
func (l *lifecycleLoad) put(c *client.Client, id int, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), lifecycleTimeout)
	defer cancel()
	p := l.rec.Begin(id, history.Put, key, value, "")
	_, err := c.Put(ctx, key, []byte(value))
	switch {
	case err == nil:
		p.End(history.Output{OK: true})
	case refused(err):
		p.End(history.Output{})
	default:
		p.End(history.Output{Unknown: true})
	}
	return err
}

// enter starts phase p and returns a function that logs how long it took.
func (l *lifecycleLoad) enter(t *testing.T, p int) func() {
	l.phase.Store(int32(p))
	start := time.Now()
	return func() { t.Logf("phase %s: %s", phaseNames[p], time.Since(start).Round(time.Millisecond)) }
}

// trustingClient is a client of the failover members with the given certificate that
// verifies members against trust's pool of the moment.
func trustingClient(t *testing.T, g *localgroup.Group, trust *switchingTrust, certFile, keyFile string) *client.Client {
	t.Helper()
	cfg, err := client.LoadTLS(g.PKI.MemberCA, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InsecureSkipVerify = true // verified below, against the pool of the moment
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		opts := x509.VerifyOptions{Roots: trust.pool.Load(), Intermediates: x509.NewCertPool(), DNSName: cs.ServerName}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	var endpoints []string
	for _, m := range g.Members {
		if !m.Async {
			endpoints = append(endpoints, m.ClientURL)
		}
	}
	c, err := client.New(client.Config{Endpoints: endpoints, TLS: cfg, Timeout: lifecycleTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLifecycle_UnderLoad runs a group's whole trust lifecycle while 64 clients read and
// write through the failover members: a replication CA rotation, a client CA rotation with
// the clients moving to a certificate of the new CA, the renewal of every member's
// certificate, and the revocation of the async member. Every call must succeed, the
// history must be linearizable and every acknowledged write must be in the final state.
func TestLifecycle_UnderLoad(t *testing.T) {
	started := time.Now()
	g := startGroup(t, localgroup.Options{Failover: 3, Async: 1, ServeArgs: append([]string{"--reload-interval", "500ms"}, fastServe...)})
	trust := &switchingTrust{}
	trust.pool.Store(x509.NewCertPool())
	trust.add(t, g.PKI.MemberCA)
	oldCert, oldKey, err := g.PKI.IssueClient("lifecycle", pki.AccessReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	l := startLifecycleLoad(t, trustingClient(t, g, trust, oldCert, oldKey))
	time.Sleep(2 * time.Second)

	done := l.enter(t, phaseMemberCA)
	rotateMemberCAUnderLoad(t, g, trust)
	done()
	done = l.enter(t, phaseClientCA)
	certFile, keyFile := rotateClientCAUnderLoad(t, g, l, trust)
	if _, err := trustingClient(t, g, trust, oldCert, oldKey).Put(t.Context(), "life/old", []byte("v")); err == nil {
		t.Error("a client certificate of the old client CA still writes after the rotation")
	}
	done()
	done = l.enter(t, phaseRenewal)
	var superseded []string
	for _, m := range g.Members {
		superseded = append(superseded, renewPushedCertificate(t, g, m))
	}
	revokeSuperseded(t, g, superseded)
	done()
	done = l.enter(t, phaseRevocation)
	revokeAsyncMember(t, g)
	time.Sleep(time.Second) // the clients go on after the revocation for a moment
	done()
	l.finish()

	checkLifecycle(t, l, trustingClient(t, g, trust, certFile, keyFile))
	t.Logf("TestLifecycle_UnderLoad: %s in all", time.Since(started).Round(time.Second))
}

// rotateMemberCAUnderLoad runs a whole replication CA rotation with the CLI; the clients
// take the new CA into their bundle before the members' certificates move.
func rotateMemberCAUnderLoad(t *testing.T, g *localgroup.Group, trust *switchingTrust) {
	t.Helper()
	rotateMemberCA(t, g, trust)
	checkRotatedMembers(t, g, filepath.Dir(g.PKI.MemberCA))
}

// rotateClientCAUnderLoad runs a client CA rotation up to trust-both, reissues the clients'
// and the admin's certificates from the new CA, moves the workers to theirs, then withdraws
// the old CA. It returns the workers' new certificate and key.
func rotateClientCAUnderLoad(t *testing.T, g *localgroup.Group, l *lifecycleLoad, trust *switchingTrust) (certFile, keyFile string) {
	t.Helper()
	caDir := filepath.Dir(g.PKI.ClientCA)
	args := func(a ...string) []string { return append(a, "--client", "--dir", caDir) }
	out, err := runRotateCLI(t, g, args("apply", "--all"), nil)
	if err != nil || !strings.Contains(out, "phase trust-both verified") || !strings.Contains(out, "mirrorkv ca issue --dir") {
		t.Fatalf("apply --all up to the reissue: %v", err)
	}
	next := filepath.Join(caDir, pki.RotationNextDir)
	certs := t.TempDir()
	for name, access := range map[string]pki.Access{"admin2": pki.AccessAdmin, "writer2": pki.AccessReadWrite} {
		cmd := exec.Command(binary, "ca", "issue", "--dir", next, "--client", "--access", string(access), "--name", name, "--out", certs)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("issue %s from the new client CA: %v\n%s", name, err, out)
		}
	}
	certFile, keyFile = filepath.Join(certs, "writer2.crt"), filepath.Join(certs, "writer2.key")
	l.switchTo(t, trustingClient(t, g, trust, certFile, keyFile))
	// The admin's files get the new certificate too: the withdrawal refuses an admin of the
	// old CA, which it would lock out.
	for _, mv := range [][2]string{{filepath.Join(certs, "admin2.key"), g.PKI.AdminKey}, {filepath.Join(certs, "admin2.crt"), g.PKI.AdminCert}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runRotateCLI(t, g, args("apply"), nil); err != nil || !strings.Contains(out, "phase withdraw verified") {
		t.Fatalf("withdraw: %v", err)
	}
	if out, err := runRotateCLI(t, g, args("verify"), nil); err != nil || !strings.Contains(out, "rotation verified") {
		t.Fatalf("verify: %v", err)
	}
	return certFile, keyFile
}

// renewPushedCertificate renews m's certificate the way docs/operations.md does, on the
// files the member serves: after a rotation those are the certificate and key pushed to
// DIR/tls, regular files that take precedence over --member-cert and --member-key, so the
// renewed pair replaces them there. The member serves it without a restart. It returns the
// serial of the certificate the renewal superseded.
func renewPushedCertificate(t *testing.T, g *localgroup.Group, m *localgroup.Member) (superseded string) {
	t.Helper()
	certFile, keyFile := filepath.Join(m.Dir, "tls", "member.crt"), filepath.Join(m.Dir, "tls", "member.key")
	if fi, err := os.Lstat(certFile); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s: %s is not the certificate pushed by the rotation (%v)", m.Name, certFile, err)
	}
	superseded = serialOf(t, certFile)
	pid, work := m.Pid(), t.TempDir()
	mirrorkv := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mirrorkv %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	newKey, csr := filepath.Join(work, "new.key"), filepath.Join(work, "new.csr")
	out := mirrorkv("cert", "renew", "--cert", certFile, "--key-out", newKey, "--csr-out", csr)
	_, line, ok := strings.Cut(out, "on the CA host: mirrorkv ")
	if !ok {
		t.Fatalf("cert renew printed no ca sign step:\n%s", out)
	}
	line, _, _ = strings.Cut(line, "\n")
	sign := strings.Fields(line)
	var newCert string
	for i, a := range sign {
		switch {
		case a == "CADIR":
			sign[i] = filepath.Dir(g.PKI.MemberCA) // the new CA since the rotation
		case i > 0 && (sign[i-1] == "--csr" || sign[i-1] == "--out"):
			sign[i] = filepath.Join(work, a)
			if sign[i-1] == "--out" {
				newCert = sign[i]
			}
		}
	}
	mirrorkv(append(sign, "--days", "200", "--yes")...)
	mirrorkv("cert", "lint", newCert, "--key", newKey, "--ca", g.PKI.MemberCA, "--group", "mirrorkv")
	renewed := readCertificate(t, newCert)
	for _, mv := range [][2]string{{newKey, keyFile}, {newCert, certFile}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, m.Name+" serves the renewed certificate", func() error {
		conn, err := tls.Dial("tcp", m.ClientAddr, tlsCfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0]; got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
			return fmt.Errorf("serves serial %x, want the renewed %x", got.SerialNumber, renewed.SerialNumber)
		}
		return nil
	})
	if m.Pid() != pid {
		t.Fatalf("%s restarted (pid %d, was %d); a renewal needs no restart", m.Name, m.Pid(), pid)
	}
	return superseded
}

// holdMemberPort opens a member-port connection to m with a member's certificate, as that
// member's raft transport does, and reports when m closes it.
func holdMemberPort(t *testing.T, m *localgroup.Member, certFile, keyFile string) *liveConn {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{mtls.ALPNMember},
		// What is checked here is the member's side: whether it lets this peer in and when
		// it cuts it off.
		InsecureSkipVerify: true,
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", m.MemberAddr, cfg)
	if err != nil {
		t.Fatalf("connect to %s's member port: %v", m.Name, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var ack [1]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil || ack[0] != 0x01 {
		t.Fatalf("%s did not acknowledge the member-port connection: %v (%#x)", m.Name, err, ack[0])
	}
	// The raft channel's header: the member hands the connection to raft, which waits for a
	// request on it.
	if _, err := conn.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Time{})
	lc := &liveConn{member: m, closed: make(chan time.Time, 1)}
	go func() {
		_, _ = conn.Read(ack[:]) // nothing comes unasked: this returns when m closes it
		lc.closed <- time.Now()
	}()
	return lc
}

// revokeAsyncMember revokes the async member's renewed certificate with `ca revoke --push`
// and checks that every failover member closes the member-port connection it holds from
// it, and that the primary then reports it out of sync.
func revokeAsyncMember(t *testing.T, g *localgroup.Group) {
	t.Helper()
	async, failover := splitMembers(g)
	certFile, keyFile := filepath.Join(async.Dir, "tls", "member.crt"), filepath.Join(async.Dir, "tls", "member.key")
	var live []*liveConn
	for _, m := range failover {
		live = append(live, holdMemberPort(t, m, certFile, keyFile))
	}
	acked, out, err := revokeAndPush(t, g, filepath.Base(filepath.Dir(g.PKI.MemberCA)), "--serial", serialOf(t, certFile))
	if err != nil || acked.IsZero() {
		t.Fatalf("push the async member's revocation: %v\n%s", err, out)
	}
	if !strings.Contains(out, "for the member port") {
		t.Errorf("the push printed\n%s\nwant it to name the member port", out)
	}
	var last time.Duration
	for _, lc := range live {
		select {
		case at := <-lc.closed:
			last = max(last, at.Sub(acked))
			t.Logf("%s closed the revoked member's connection %s after the push was acknowledged", lc.member.Name, at.Sub(acked).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			t.Fatalf("%s kept the revoked member's member-port connection open", lc.member.Name)
		}
	}
	t.Logf("the last of %d member-port connections closed %s after the push was acknowledged (negative: before the CLI printed the acknowledgement)",
		len(live), last.Round(time.Millisecond))
	eventually(t, 30*time.Second, "the primary reports the revoked async member out of sync", func() error {
		if inSync(t, g)[async.Name] {
			return fmt.Errorf("%s is still in sync", async.Name)
		}
		return nil
	})
}

// splitMembers returns the group's async member and its failover members.
func splitMembers(g *localgroup.Group) (async *localgroup.Member, failover []*localgroup.Member) {
	for _, m := range g.Members {
		if m.Async {
			async = m
		} else {
			failover = append(failover, m)
		}
	}
	return async, failover
}

// inSync is which members the primary reports in sync (PRIMARY, STANDBY or ASYNC); it
// is empty while no failover member reports itself primary.
func inSync(t *testing.T, g *localgroup.Group) map[string]bool {
	t.Helper()
	_, failover := splitMembers(g)
	admin := clientOf(t, g, failover...)
	out := make(map[string]bool)
	for _, m := range failover {
		st, err := admin.StatusOf(t.Context(), m.ClientURL)
		if err != nil || st.Role != wire.RolePrimary {
			continue
		}
		out[m.Name] = true
		for _, ms := range st.Members {
			out[ms.Name] = ms.Role == wire.RoleStandby || ms.Role == wire.RoleAsync || ms.Role == wire.RolePrimary
		}
		return out
	}
	return out
}

// revokeSuperseded revokes the certificates the renewal superseded, as docs/operations.md
// says to, and pushes the CRL once: the connections opened before the renewal, which still
// run on them, close, and the members open new ones on their renewed certificates. The
// whole group must then be in sync again.
func revokeSuperseded(t *testing.T, g *localgroup.Group, serials []string) {
	t.Helper()
	caDir := filepath.Dir(g.PKI.MemberCA)
	for _, serial := range serials {
		if out, err := runCLI(g, "ca", "revoke", "--dir", caDir, "--serial", serial, "--reason", "superseded"); err != nil {
			t.Fatalf("revoke the superseded certificate %s: %v\n%s", serial, err, out)
		}
	}
	before := revokedRefusals(t, g)
	_, out, err := pushWithCLI(g, "ca", "crl", "--dir", caDir, "--push")
	if err != nil && strings.Contains(out, fmt.Sprintf("reason %d", int(reason.NotPrimary))) {
		t.Logf("ca crl --push met a change of primary; pushing again:\n%s", out)
		_, out, err = pushWithCLI(g, "ca", "crl", "--dir", caDir, "--push")
	}
	if err != nil {
		t.Fatalf("push the CRL of the superseded certificates: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "the connections on superseded certificates cut", func() error {
		if n := revokedRefusals(t, g) - before; n == 0 {
			return errors.New("no member-port connection cut as revoked")
		}
		return nil
	})
	t.Logf("member-port connections on superseded certificates cut or refused: %d", revokedRefusals(t, g)-before)
	eventually(t, 30*time.Second, "every member in sync on its renewed certificate", func() error {
		in := inSync(t, g)
		for _, m := range g.Members {
			if !in[m.Name] {
				return fmt.Errorf("%s is not in sync", m.Name)
			}
		}
		return nil
	})
}

// checkLifecycle reads every key written, linearizably and into the history, then checks that no call failed, that no acknowledged write was lost and that the
// history is linearizable.
func checkLifecycle(t *testing.T, l *lifecycleLoad, c *client.Client) {
	t.Helper()
	ops := l.rec.Ops()
	keys := make(map[string]bool)
	for _, op := range ops {
		if op.Kind == history.Put {
			keys[op.Key] = true
		}
	}
	finals := make(map[string]finalRead)
	for key := range keys {
		ctx, cancel := context.WithTimeout(t.Context(), lifecycleTimeout)
		p := l.rec.Begin(lifecycleClients, history.Get, key, "", "")
		v, _, err := c.Get(ctx, key)
		cancel()
		switch {
		case err == nil:
			p.End(history.Output{Found: true, Value: string(v)})
			finals[key] = finalRead{found: true, value: string(v)}
		case client.IsNotFound(err):
			p.End(history.Output{})
			finals[key] = finalRead{}
		default:
			t.Fatalf("final read of %s: %v", key, err)
		}
	}
	var total int64
	for p := range phaseCount {
		n := l.ok[p].Load()
		total += n
		t.Logf("%s: %d calls succeeded", phaseNames[p], n)
	}
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d of %d client calls failed; first ones:\n%s", n, total+n, strings.Join(l.failures, "\n"))
	}
	ops = l.rec.Ops()
	if lost := lostAcked(ops, finals); lost > 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	checkStarted := time.Now()
	res, err := history.Check(ops, checkTimeout)
	if err != nil {
		t.Fatalf("check history: %v", err)
	}
	t.Logf("history: %d ops over %d keys (%d checked) in %s; linearizable=%v undecided=%v",
		len(ops), len(keys), res.Ops, time.Since(checkStarted).Round(time.Millisecond), res.Linearizable, res.Unknown)
	if !res.Linearizable {
		path := filepath.Join(failureDir(t), "lifecycle.html")
		if err := res.WriteHTML(path); err != nil {
			t.Errorf("write history report: %v", err)
		}
		t.Errorf("the history is not linearizable (undecided: %v); porcupine's report: %s", res.Unknown, path)
	}
}

// revokedRefusals is how many member-port peers the members cut off or refused as revoked,
// all members together.
func revokedRefusals(t *testing.T, g *localgroup.Group) int {
	t.Helper()
	total := 0
	for _, m := range g.Members {
		n, err := memberRefusals(t, g, m)
		if err != nil {
			t.Fatalf("metrics of %s: %v", m.Name, err)
		}
		total += n
	}
	return total
}
