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
)

// rotateCLI runs `mirrorkv ca rotate ARGS --member --dir CADIR` as the group's admin.
func rotateCLI(t *testing.T, g *localgroup.Group, args ...string) (string, error) {
	t.Helper()
	caDir := filepath.Dir(g.PKI.MemberCA)
	full := append([]string{"ca", "rotate"}, args...)
	full = append(full, "--member", "--dir", caDir)
	cmd := exec.Command(binary, full...)
	cmd.Env = append(os.Environ(), g.Env()...)
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

func (w *writers) start(ctx context.Context, c *client.Client, n int) {
	for i := range n {
		w.wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := c.Put(opCtx, fmt.Sprintf("rot/%d/%d", i, seq%50), []byte("v"))
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
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
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
		w.start(ctx, c, 2)
	}

	if out, err := rotateCLI(t, g, "plan"); err != nil || !strings.Contains(out, "1 new-ca") {
		t.Fatalf("plan: %v", err)
	}
	if out, err := rotateCLI(t, g, "apply"); err != nil || !strings.Contains(out, "phase new-ca verified") {
		t.Fatalf("apply new-ca: %v", err)
	}
	// The clients take the new CA into their bundle before the members' certificates move.
	trust.add(t, filepath.Join(caDir, pki.RotationNextDir, pki.CACertFile))
	if out, err := rotateCLI(t, g, "apply", "--all"); err != nil || !strings.Contains(out, "phase withdraw verified") {
		t.Fatalf("apply --all: %v", err)
	}
	if out, err := rotateCLI(t, g, "verify"); err != nil || !strings.Contains(out, "rotation verified") {
		t.Fatalf("verify: %v", err)
	}
	time.Sleep(time.Second) // the writers go on against the new trust for a moment
	stop()
	w.wg.Wait()
	if w.failed.Load() > 0 || w.ok.Load() == 0 {
		t.Fatalf("writers: %d ok, %d failed during the rotation; first error: %v", w.ok.Load(), w.failed.Load(), w.firstErr)
	}
	t.Logf("writers: %d writes, none failed", w.ok.Load())
	checkRotatedMembers(t, g, caDir)
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
