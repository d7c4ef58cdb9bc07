package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// liveConn is a client's keep-alive connection to one member's client port, with the time
// the member closed it.
type liveConn struct {
	member *localgroup.Member
	closed chan time.Time
}

// clientTLS is the TLS configuration of a client certificate that verifies members.
func clientTLS(t *testing.T, g *localgroup.Group, certFile, keyFile string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(mustRead(t, g.PKI.MemberCA)) {
		t.Fatal("no CA in the member CA file")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, NextProtos: []string{"http/1.1"}}
}

// healthOver asks /healthz over conn and reads the answer, whatever its status: an answer
// means the member took the client's certificate. With TLS 1.3 a refused certificate shows
// here, on the first read.
func healthOver(conn net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: member\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// dialClientPort opens a connection to m's client port with cfg and checks it with one
// request; it returns the connection, still open, and its reader.
func dialClientPort(m *localgroup.Member, cfg *tls.Config) (net.Conn, *bufio.Reader, error) {
	cfg = cfg.Clone()
	cfg.ServerName = m.Host
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", m.ClientAddr, cfg)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	if err := healthOver(conn, br); err != nil {
		conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// holdOpen keeps a checked connection to m open and reports when the member closes it.
func holdOpen(t *testing.T, m *localgroup.Member, cfg *tls.Config) *liveConn {
	t.Helper()
	conn, br, err := dialClientPort(m, cfg)
	if err != nil {
		t.Fatalf("connect to %s before the revocation: %v", m.Name, err)
	}
	t.Cleanup(func() { conn.Close() })
	lc := &liveConn{member: m, closed: make(chan time.Time, 1)}
	go func() {
		_, _ = br.ReadByte() // the member sends nothing unasked: this returns when it closes
		lc.closed <- time.Now()
	}()
	return lc
}

// pushWithCLI runs a mirrorkv push command as the group's admin and returns when the CLI
// printed the group's acknowledgement ("pushed CRL ..."), zero if it never did.
func pushWithCLI(g *localgroup.Group, args ...string) (acked time.Time, out string, err error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), g.Env()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return acked, "", err
	}
	if err := cmd.Start(); err != nil {
		return acked, "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "pushed CRL") {
			acked = time.Now()
		}
		b.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	return acked, b.String() + stderr.String(), err
}

// runCLI runs the mirrorkv binary as the group's admin.
func runCLI(g *localgroup.Group, args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), g.Env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func serialOf(t *testing.T, certFile string) string {
	t.Helper()
	certs, err := pki.ParseCertificates(mustRead(t, certFile))
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].SerialNumber.Text(16)
}

// memberRefusals is how many member-port peers m refused or cut off as revoked: live
// connections closed and new handshakes refused both count.
func memberRefusals(t *testing.T, g *localgroup.Group, m *localgroup.Member) (int, error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, g, g.PKI.AdminCert, g.PKI.AdminKey)}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(m.ClientURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	want := fmt.Sprintf(`mirrorkv_tls_handshake_refusals_total{port="member",reason="%d"} `, int(reason.Revoked))
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			var n float64
			_, err := fmt.Sscan(v, &n)
			return int(n), err
		}
	}
	return 0, nil
}

// A revocation pushed with `mirrorkv ca revoke --push` reaches every member through the
// group's replicated state: the revoked client's live connections close on every member and
// its new handshakes are refused, a revoked async member is cut off the member port, a CRL
// from another CA is refused with its reason, and a restarted member enforces the pushed
// CRL although its crl.pem is older. The members check their CRL files only once an hour
// here, so nothing but the push can close a connection.
func TestSecurity_PushedRevocation(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, Async: 1, ServeArgs: append([]string{"--reload-interval", "1h"}, fastServe...)})
	ctx := t.Context()
	oldClientCRL := mustRead(t, g.PKI.ClientCRL)
	eveCert, eveKey, err := g.PKI.IssueClient("eve", pki.AccessReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	eve := clientTLS(t, g, eveCert, eveKey)
	var live []*liveConn
	for _, m := range g.Members {
		live = append(live, holdOpen(t, m, eve))
	}

	t.Run("client revoked on every member", func(t *testing.T) {
		acked, out, err := pushWithCLI(g, "ca", "revoke", "--dir", filepath.Join(g.PKI.Dir, "client-ca"), eveCert, "--push")
		if err != nil && strings.Contains(out, fmt.Sprintf("reason %d", int(reason.NotPrimary))) {
			// The primary changed under the CLI's few retries (a loaded machine, 500 ms
			// elections): the revocation is written, push the CRL again as an operator would.
			t.Logf("ca revoke --push met a change of primary; pushing again with ca crl --push:\n%s", out)
			acked, out, err = pushWithCLI(g, "ca", "crl", "--dir", filepath.Join(g.PKI.Dir, "client-ca"), "--push")
		}
		if err != nil {
			t.Fatalf("push the revocation: %v\n%s", err, out)
		}
		if !strings.Contains(out, "for the client port") {
			t.Errorf("the push printed\n%s\nwant it to name the client port", out)
		}
		var last time.Time
		for _, lc := range live {
			select {
			case at := <-lc.closed:
				if at.After(last) {
					last = at
				}
				t.Logf("%s closed the revoked client's connection %s after the push was acknowledged", lc.member.Name, at.Sub(acked).Round(time.Millisecond))
			case <-time.After(30 * time.Second):
				t.Fatalf("%s kept the revoked client's live connection open", lc.member.Name)
			}
		}
		t.Logf("the last of %d live connections closed %s after the push was acknowledged (negative: before the CLI printed the acknowledgement)",
			len(live), last.Sub(acked).Round(time.Millisecond))
		for _, m := range g.Members {
			if conn, _, err := dialClientPort(m, eve); err == nil {
				conn.Close()
				t.Errorf("%s accepted a new handshake of the revoked client", m.Name)
			}
		}
	})

	t.Run("async member revoked", func(t *testing.T) {
		var async *localgroup.Member
		for _, m := range g.Members {
			if m.Async {
				async = m
			}
		}
		primary := primaryOf(t, g)
		before, err := memberRefusals(t, g, primary)
		if err != nil {
			t.Fatal(err)
		}
		_, out, err := pushWithCLI(g, "ca", "revoke", "--dir", filepath.Join(g.PKI.Dir, "member-ca"), "--serial", serialOf(t, async.CertFile), "--push")
		if err != nil && strings.Contains(out, fmt.Sprintf("reason %d", int(reason.NotPrimary))) {
			t.Logf("ca revoke --push met a change of primary; pushing again with ca crl --push:\n%s", out)
			_, out, err = pushWithCLI(g, "ca", "crl", "--dir", filepath.Join(g.PKI.Dir, "member-ca"), "--push")
		}
		if err != nil {
			t.Fatalf("push the async member's revocation: %v\n%s", err, out)
		}
		if !strings.Contains(out, "for the member port") {
			t.Errorf("the push printed\n%s\nwant it to name the member port", out)
		}
		// The primary replicates to the async member over the member port: it cuts those
		// connections and refuses the redials, and the async member falls out of sync.
		eventually(t, 30*time.Second, primary.Name+" cuts the revoked async member off", func() error {
			n, err := memberRefusals(t, g, primary)
			if err == nil && n <= before {
				err = errors.New("no member-port peer cut off or refused as revoked yet")
			}
			return err
		})
		admin := clientOf(t, g, primary)
		eventually(t, 30*time.Second, "the primary reports the revoked async member out of sync", func() error {
			st, err := admin.StatusOf(ctx, primary.ClientURL)
			if err != nil {
				return err
			}
			for _, ms := range st.Members {
				if ms.Name == async.Name && ms.Role != wire.RoleAsync {
					return nil
				}
			}
			return fmt.Errorf("%s is still in sync", async.Name)
		})
	})

	t.Run("CRL of another CA refused", func(t *testing.T) {
		impostor, err := pki.InitCA(filepath.Join(t.TempDir(), "impostor"), pki.CAOptions{Name: "mirrorkv client CA", Unencrypted: true})
		if err != nil {
			t.Fatal(err)
		}
		forged, err := impostor.CRL(0)
		if err != nil {
			t.Fatal(err)
		}
		admin := clientOf(t, g, g.Members[:3]...)
		_, err = admin.PushCRL(ctx, forged)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity || reason.Code(ce.Reason.Code) != reason.CRLUnknownSigner || ce.Fix == "" {
			t.Fatalf("push a CRL of another CA: %v, want 422 crl-unknown-signer with a fix", err)
		}
		out, err := runCLI(g, "ca", "crl", "--dir", impostor.Dir(), "--push")
		if err == nil || !strings.Contains(out, fmt.Sprint(int(reason.CRLUnknownSigner))) {
			t.Fatalf("ca crl --push of another CA: %v\n%s\nwant a refusal with reason %d", err, out, reason.CRLUnknownSigner)
		}
		for _, m := range g.Members[:3] {
			if conn, _, err := dialClientPort(m, eve); err == nil {
				conn.Close()
				t.Errorf("%s let the revoked client in after a refused push", m.Name)
			}
		}
	})

	t.Run("restart with an older crl.pem", func(t *testing.T) {
		m := others(g, primaryOf(t, g))[0]
		if m.Async {
			m = others(g, primaryOf(t, g))[1]
		}
		if err := m.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		// Every member reads this file; they look at it again only in an hour.
		if err := os.WriteFile(g.PKI.ClientCRL, oldClientCRL, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := g.Restart(m); err != nil {
			t.Fatal(err)
		}
		admin := clientOf(t, g, m)
		eventually(t, 60*time.Second, m.Name+" serves again", func() error {
			_, err := admin.StatusOf(ctx, m.ClientURL)
			return err
		})
		if conn, _, err := dialClientPort(m, eve); err == nil {
			conn.Close()
			t.Fatalf("%s, restarted with the older crl.pem, accepted the revoked client", m.Name)
		}
		conn, _, err := dialClientPort(m, clientTLS(t, g, g.PKI.AdminCert, g.PKI.AdminKey))
		if err != nil {
			t.Fatalf("%s refused the admin after its restart: %v", m.Name, err)
		}
		conn.Close()
	})

	t.Run("a member that joins later", func(t *testing.T) {
		// Its crl.pem is the older one too: the revocation can only reach it through the
		// group's state, in the snapshot or the log it catches up from.
		m, err := g.Grow(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, m.Name+" refuses the client revoked before it joined", func() error {
			if conn, _, err := dialClientPort(m, eve); err == nil {
				conn.Close()
				return errors.New("it accepted the revoked client")
			}
			return nil
		})
		conn, _, err := dialClientPort(m, clientTLS(t, g, g.PKI.AdminCert, g.PKI.AdminKey))
		if err != nil {
			t.Fatalf("%s refused the admin: %v", m.Name, err)
		}
		conn.Close()
	})
}
