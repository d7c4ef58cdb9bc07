package mtls

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

const opensslPath = "/usr/bin/openssl"

// opensslServer starts `openssl s_server` requiring a client certificate from ca and
// returns its address once it accepts connections.
func opensslServer(t *testing.T, srv *pkitest.Leaf, ca *pkitest.CA) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, opensslPath, "s_server", "-accept", addr, "-cert", srv.CertPath,
		"-key", srv.KeyPath, "-CAfile", ca.CertPath, "-Verify", "1", "-verify_return_error")
	stdin, _ := cmd.StdinPipe() // kept open: s_server stops at end of input
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start openssl s_server: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); cancel(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ACCEPT") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("openssl s_server did not start")
	}
	return addr
}

func TestProbe_OpenSSLServer(t *testing.T) {
	rca, cca, other := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients"), pkitest.NewCA(t, "stranger")
	server := rca.Member("server")
	cases := []struct {
		name     string
		opts     ProbeOptions
		ok       bool
		want     reason.Code
		contains string
	}{
		{"good client certificate", ProbeOptions{CAFile: rca.CertPath, CertFile: cca.Client("alice").CertPath}, true, reason.OK, "mutual TLS works"},
		{"certificate from another CA", ProbeOptions{CAFile: rca.CertPath, CertFile: other.Client("mallory").CertPath}, false, reason.UnknownCA, "the server refused your certificate"},
		{"no certificate", ProbeOptions{CAFile: rca.CertPath}, false, reason.NoCertificate, ""},
		{"no CA to verify with", ProbeOptions{CertFile: cca.Client("alice").CertPath}, false, reason.UnknownCA, "could not be verified"},
		{"wrong CA for the server", ProbeOptions{CAFile: other.CertPath, CertFile: cca.Client("alice").CertPath}, false, reason.UnknownCA, "failed verification"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := opensslServer(t, server, cca)
			if tc.opts.CertFile != "" {
				tc.opts.KeyFile = strings.TrimSuffix(tc.opts.CertFile, ".pem") + "-key.pem"
			}
			rep, err := Probe(t.Context(), addr, tc.opts)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if rep.OK() != tc.ok || rep.Code != tc.want || !strings.Contains(rep.Summary, tc.contains) {
				t.Fatalf("report OK=%v code=%d summary=%q; want OK=%v code=%d containing %q", rep.OK(), rep.Code, rep.Summary, tc.ok, tc.want, tc.contains)
			}
			if len(rep.Chain) == 0 || rep.Chain[0].Subject != dnOf(server.Cert) {
				t.Errorf("chain %+v does not start with the server's certificate", rep.Chain)
			}
			if tc.opts.CAFile == rca.CertPath && (!rep.ClientCertRequested || !slices.Contains(rep.AcceptableCAs, dnOf(cca.Cert))) {
				t.Errorf("acceptable CAs %v: want the client CA %q", rep.AcceptableCAs, dnOf(cca.Cert))
			}
		})
	}
}

func TestProbe_Listeners(t *testing.T) {
	w := newWorld(t)
	member := sourceFor(t, PortMember, w.member, w.rca.CertPath, "", nil)
	memberAddr, _ := listen(t, member.Listen)
	client := sourceFor(t, PortClient, w.member, w.cca.CertPath, "", nil)
	clientAddr, _ := listen(t, client.HTTPSListener)
	serverOnly := w.rca.ServerOnly("half")
	cases := []struct {
		name     string
		addr     string
		leaf     *pkitest.Leaf
		ok, ack  bool
		want     reason.Code
		contains string
	}{
		{"member port, member certificate", memberAddr, w.rca.Member("probe"), true, true, reason.OK, "mutual TLS works"},
		{"member port, serverAuth only", memberAddr, serverOnly, false, false, reason.MissingClientAuth, "the server refused your certificate"},
		{"member port, client certificate", memberAddr, w.cca.Client("alice"), false, false, reason.UnknownCA, "refused"},
		{"client port, client certificate", clientAddr, w.client, true, false, reason.OK, "mutual TLS works"},
		{"client port, expired certificate", clientAddr, w.cca.Expired("old"), false, false, reason.CertExpired, "refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Probe(t.Context(), tc.addr, ProbeOptions{CAFile: w.rca.CertPath, CertFile: tc.leaf.CertPath, KeyFile: tc.leaf.KeyPath, Wait: 300 * time.Millisecond})
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if rep.OK() != tc.ok || rep.MemberAck != tc.ack || rep.Code != tc.want || !strings.Contains(rep.Summary, tc.contains) {
				t.Fatalf("report OK=%v ack=%v code=%d summary=%q; want OK=%v ack=%v code=%d containing %q",
					rep.OK(), rep.MemberAck, rep.Code, rep.Summary, tc.ok, tc.ack, tc.want, tc.contains)
			}
			if rep.Version != "TLS 1.3" {
				t.Errorf("version %q, want TLS 1.3", rep.Version)
			}
		})
	}
}

// TestListen_OpenSSLClient: openssl s_client completes a mutual handshake with a member
// listener, and is refused with a reason without a certificate.
func TestListen_OpenSSLClient(t *testing.T) {
	w := newWorld(t)
	log := newReasonLog()
	src := sourceFor(t, PortMember, w.member, w.rca.CertPath, "", log.logger())
	addr, accepted := listen(t, src.Listen)
	sClient := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), opensslPath, append([]string{"s_client", "-connect", addr, "-CAfile", w.rca.CertPath, "-verify_return_error"}, args...)...)
		cmd.Stdin = strings.NewReader("")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run()
		return out.String()
	}
	peer := w.rca.Member("openssl-peer")
	out := sClient("-cert", peer.CertPath, "-key", peer.KeyPath)
	if !strings.Contains(out, "Verify return code: 0 (ok)") || !strings.Contains(out, "TLSv1.3") {
		t.Errorf("s_client output lacks a verified TLS 1.3 handshake:\n%s", out)
	}
	select {
	case c := <-accepted:
		if got := c.(interface{ RemoteAddr() net.Addr }).RemoteAddr(); got == nil {
			t.Error("no remote address")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the listener did not accept openssl's connection")
	}
	out = sClient("-ign_eof") // wait for the TLS 1.3 refusal, which arrives after the handshake
	if got := log.next(t); got != reason.NoCertificate {
		t.Errorf("listener reason %d, want NoCertificate; s_client said:\n%s", got, out)
	}
	if !strings.Contains(out, "certificate required") {
		t.Errorf("s_client output lacks the refusal:\n%s", out)
	}
}
