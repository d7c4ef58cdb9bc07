package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/wire"
)

func readE2EFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rotateCLI runs `mirrorkv ca rotate ARGS --member --dir CADIR` as the group's admin.
func rotateCLI(t *testing.T, g *localgroup.Group, args ...string) (string, error) {
	t.Helper()
	return runRotateCLI(t, g, append(args, "--member", "--dir", filepath.Dir(g.PKI.MemberCA)), nil)
}

// runRotateCLI runs `mirrorkv ca rotate ARGS` with the group's environment and env on top.
func runRotateCLI(t *testing.T, g *localgroup.Group, args, env []string) (string, error) {
	t.Helper()
	full := append([]string{"ca", "rotate"}, args...)
	cmd := exec.Command(binary, full...)
	cmd.Env = append(append(os.Environ(), g.Env()...), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("$ mirrorkv %s\n%s", strings.Join(full, " "), out)
	return string(out), err
}

// switchingTrust is the member CA pool of the test's writers: it starts with the old CA and
// takes the new one once it exists, as an operator updates the clients' bundle.
type switchingTrust struct{ pool atomic.Pointer[x509.CertPool] }

func (s *switchingTrust) add(t *testing.T, caFile string) {
	t.Helper()
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := s.pool.Load().Clone()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("no CA certificate in %s", caFile)
	}
	s.pool.Store(pool)
}

// tlsConfig verifies members against the current pool on each new connection.
func (s *switchingTrust) tlsConfig(t *testing.T, g *localgroup.Group, access pki.Access) *tls.Config {
	t.Helper()
	certFile, keyFile, err := g.PKI.IssueClient("writer-"+string(access), access)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := client.LoadTLS(g.PKI.MemberCA, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InsecureSkipVerify = true // verified below, against the pool of the moment
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		opts := x509.VerifyOptions{Roots: s.pool.Load(), Intermediates: x509.NewCertPool(), DNSName: cs.ServerName}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return cfg
}

// writers put keys through every member until stop, counting failures.
type writers struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   error
	wg         sync.WaitGroup
}

// startSwitching runs n writers that take the client from p for each write, so that the
// test can hand them a client with other credentials.
func (w *writers) startSwitching(ctx context.Context, p *atomic.Pointer[client.Client], n, first int) {
	for i := first; i < first+n; i++ {
		w.wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := p.Load().Put(opCtx, fmt.Sprintf("rot/%d/%d", i, seq%50), []byte("v"))
				cancel()
				switch {
				case err == nil:
					w.ok.Add(1)
				case ctx.Err() == nil:
					w.failed.Add(1)
					w.mu.Lock()
					w.firstErr = cmpErr(w.firstErr, err)
					w.mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func TestRotation_MemberCAUnderLoad(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, Async: 1, ServeArgs: fastServe})
	caDir := filepath.Dir(g.PKI.MemberCA)
	trust := &switchingTrust{}
	trust.pool.Store(x509.NewCertPool())
	trust.add(t, g.PKI.MemberCA)
	ctx, stop := context.WithCancel(t.Context())
	w := &writers{}
	for _, access := range []pki.Access{pki.AccessReadWrite, pki.AccessAdmin} {
		c, err := client.New(client.Config{Endpoints: g.Endpoints(), TLS: trust.tlsConfig(t, g, access), Timeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var p atomic.Pointer[client.Client]
		p.Store(c)
		w.startSwitching(ctx, &p, 2, 2*len(access))
	}

	rotateMemberCA(t, g, trust)
	time.Sleep(time.Second) // the writers go on against the new trust for a moment
	stop()
	w.wg.Wait()
	if w.failed.Load() > 0 || w.ok.Load() == 0 {
		t.Fatalf("writers: %d ok, %d failed during the rotation; first error: %v", w.ok.Load(), w.failed.Load(), w.firstErr)
	}
	t.Logf("writers: %d writes, none failed", w.ok.Load())
	checkRotatedMembers(t, g, caDir)
}

// rotateMemberCA rotates the group's replication CA with the CLI: plan, the first phase,
// the clients' bundle taking the new CA before the members' certificates move, the other
// phases, verify.
func rotateMemberCA(t *testing.T, g *localgroup.Group, trust *switchingTrust) {
	t.Helper()
	caDir := filepath.Dir(g.PKI.MemberCA)
	if out, err := rotateCLI(t, g, "plan"); err != nil || !strings.Contains(out, "1 new-ca") {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	if out, err := rotateCLI(t, g, "apply"); err != nil || !strings.Contains(out, "phase new-ca verified") {
		t.Fatalf("apply new-ca: %v\n%s", err, out)
	}
	trust.add(t, filepath.Join(caDir, pki.RotationNextDir, pki.CACertFile))
	if out, err := rotateCLI(t, g, "apply", "--all"); err != nil || !strings.Contains(out, "phase withdraw verified") {
		t.Fatalf("apply --all: %v\n%s", err, out)
	}
	if out, err := rotateCLI(t, g, "verify"); err != nil || !strings.Contains(out, "rotation verified") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// checkRotatedMembers checks that each member port serves a chain of the new CA (now the CA
// of caDir) and refuses a member certificate of the old CA.
func checkRotatedMembers(t *testing.T, g *localgroup.Group, caDir string) {
	t.Helper()
	oldCert, oldKey := g.Members[0].CertFile, g.Members[0].KeyFile // m1's certificate of the old CA
	both := filepath.Join(caDir, pki.RotationFilesDir, "ca-both.pem")
	for _, m := range g.Members {
		out, err := exec.Command(binary, "probe", m.MemberAddr, "--ca", filepath.Join(caDir, pki.CACertFile), "--cert", oldCert, "--key", oldKey).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "verified:    yes") || !strings.Contains(string(out), "accepted:    no") {
			t.Errorf("probe %s with the new CA and m1's old certificate: err=%v\n%s\nwant a chain of the new CA and a refusal", m.Name, err, out)
		}
		out, err = exec.Command(binary, "probe", m.MemberAddr, "--ca", both, "--cert", oldCert, "--key", oldKey).CombinedOutput()
		if err == nil {
			t.Errorf("probe %s with m1's old certificate was accepted:\n%s", m.Name, out)
		}
	}
}

func TestRotation_RefusedWhileAMemberIsDown(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	down := g.Members[2]
	if err := down.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	out, err := rotateCLI(t, g, "apply", "--all")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("apply with %s down: err=%v, want exit status 1", down.Name, err)
	}
	for _, want := range []string{"member " + down.Name, "unreachable", "start " + down.Name, "rotation-blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply's refusal does not say %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(g.PKI.MemberCA), pki.RotationNextDir)); err == nil {
		t.Errorf("the refused apply made the new CA anyway")
	}
}

func TestRotation_AbortBeforeLeaves(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	for range 2 { // new-ca, then trust-both
		if _, err := rotateCLI(t, g, "apply"); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	// m2 loses the new CA (a restore from a backup): the leaves may not move.
	caDir := filepath.Dir(g.PKI.MemberCA)
	oldOnly := wire.TrustPush{Port: wire.TLSPortMember, CA: string(readE2EFile(t, g.PKI.MemberCA)), CRL: string(readE2EFile(t, g.PKI.MemberCRL))}
	if _, err := g.Admin().PushTrust(t.Context(), g.Members[1].ClientURL, oldOnly); err != nil {
		t.Fatal(err)
	}
	out, err := rotateCLI(t, g, "apply")
	if err == nil || !strings.Contains(out, "phase leaves: member m2") || !strings.Contains(out, "does not trust the new CA") {
		t.Fatalf("apply with m2 not trusting the new CA: %v, want a refusal naming m2", err)
	}
	if out, err := rotateCLI(t, g, "abort"); err != nil || !strings.Contains(out, "aborted") {
		t.Fatalf("abort: %v", err)
	}
	ctx := t.Context()
	for _, m := range g.Members {
		info, err := g.Admin().TLSOf(ctx, m.ClientURL)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.MemberCAs) != 1 || info.MemberCAs[0].Subject != "CN=mirrorkv replication CA" {
			t.Errorf("%s trusts %+v after the abort, want the old CA alone", m.Name, info.MemberCAs)
		}
	}
	if _, err := os.Stat(filepath.Join(caDir, pki.RotationFile)); err == nil {
		t.Error("the rotation state is still there after the abort")
	}
	// A new rotation starts from the beginning.
	if out, err := rotateCLI(t, g, "plan"); err != nil || !strings.Contains(out, "nothing applied yet") {
		t.Fatalf("plan after the abort: %v", err)
	}
}

func TestRotation_ClientCAUnderLoad(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	caDir := filepath.Dir(g.PKI.ClientCA)
	args := func(a ...string) []string { return append(a, "--client", "--dir", caDir) }
	ctx, stop := context.WithCancel(t.Context())
	w := &writers{}
	var current atomic.Pointer[client.Client]
	current.Store(clientOf(t, g, g.Members...))
	w.startSwitching(ctx, &current, 3, 0)

	out, err := runRotateCLI(t, g, args("apply", "--all"), nil)
	if err != nil || !strings.Contains(out, "phase trust-both verified") || !strings.Contains(out, "mirrorkv ca issue --dir") {
		t.Fatalf("apply --all up to the reissue: %v", err)
	}
	// The operator reissues the client certificates from the new CA; the writers move to one.
	next := filepath.Join(caDir, pki.RotationNextDir)
	certs := t.TempDir()
	for _, name := range []string{"admin2", "writer2"} {
		cmd := exec.Command(binary, "ca", "issue", "--dir", next, "--client", "--access", "admin", "--name", name, "--out", certs)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("issue %s from the new client CA: %v\n%s", name, err, out)
		}
	}
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, filepath.Join(certs, "writer2.crt"), filepath.Join(certs, "writer2.key"))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := client.New(client.Config{Endpoints: g.Endpoints(), TLS: tlsCfg, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	current.Store(c2)
	time.Sleep(time.Second) // writes in flight on the old certificate's connections finish

	if _, err := runRotateCLI(t, g, args("apply"), nil); err == nil {
		t.Fatal("withdraw with the old admin certificate: want a refusal, it would lock the admin out")
	}
	newAdmin := []string{"MIRRORKV_CERT=" + filepath.Join(certs, "admin2.crt"), "MIRRORKV_KEY=" + filepath.Join(certs, "admin2.key")}
	if out, err := runRotateCLI(t, g, args("apply"), newAdmin); err != nil || !strings.Contains(out, "phase withdraw verified") {
		t.Fatalf("withdraw: %v", err)
	}
	if out, err := runRotateCLI(t, g, args("verify"), newAdmin); err != nil || !strings.Contains(out, "rotation verified") {
		t.Fatalf("verify: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	w.wg.Wait()
	if w.failed.Load() > 0 || w.ok.Load() == 0 {
		t.Fatalf("writers: %d ok, %d failed during the rotation; first error: %v", w.ok.Load(), w.failed.Load(), w.firstErr)
	}
	old := clientOf(t, g, g.Members[0])
	if _, err := old.Put(t.Context(), "k", []byte("v")); err == nil {
		t.Fatal("a client certificate of the old client CA still writes after the rotation")
	}
}

// A CA host that dies in the middle of the leaves phase, after m1 got its new certificate:
// the next apply resumes the open phase, skips m1 and moves the others.
func TestRotation_ResumesAfterACrash(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	caDir := filepath.Dir(g.PKI.MemberCA)
	for range 2 { // new-ca, then trust-both
		if _, err := rotateCLI(t, g, "apply"); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	// What the crashed run did: the leaves phase opened, m1 moved.
	state, err := pki.LoadRotation(caDir, pki.KindMember)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Begin(pki.PhaseLeaves); err != nil {
		t.Fatal(err)
	}
	if err := state.Save(time.Now()); err != nil {
		t.Fatal(err)
	}
	next, err := pki.OpenCA(filepath.Join(caDir, pki.RotationNextDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	m1 := g.Members[0].ClientURL
	csr, err := g.Admin().KeyRequestOf(t.Context(), m1)
	if err != nil {
		t.Fatal(err)
	}
	is, err := next.Sign(csr, pki.SignOptions{Kind: pki.KindMember, Renew: true})
	if err != nil {
		t.Fatal(err)
	}
	// The admin client trusts the old CA only; m1 answers on a connection it already holds.
	if _, err := g.Admin().PushCert(t.Context(), m1, is.CertPEM); err != nil {
		t.Fatal(err)
	}

	if out, err := rotateCLI(t, g, "plan"); err != nil || !strings.Contains(out, "leaves applied but not verified") {
		t.Fatalf("plan after the crash: %v", err)
	}
	// m1 serves a certificate of the new CA: trusting the old CA alone would cut it off.
	if out, err := rotateCLI(t, g, "abort"); err == nil || !strings.Contains(out, "already serve certificates from the new CA") {
		t.Fatalf("abort after m1 moved: %v, want a refusal", err)
	}
	out, err := rotateCLI(t, g, "apply", "--all")
	if err != nil || !strings.Contains(out, "m1: already serves a certificate of the new CA") || !strings.Contains(out, "phase withdraw verified") {
		t.Fatalf("apply after the crash: %v", err)
	}
	if out, err := rotateCLI(t, g, "verify"); err != nil || !strings.Contains(out, "rotation verified") {
		t.Fatalf("verify: %v", err)
	}
}
