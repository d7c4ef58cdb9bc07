package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/mtls"
)

// runProbeCLI runs `mirrorkv probe args...` and returns the exit status and both outputs.
func runProbeCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{ctx: t.Context(), stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(e, append([]string{"probe"}, args...))
	return code, stdout.String(), stderr.String()
}

// memberPort starts a member listener that accepts certificates from ca.
func memberPort(t *testing.T, ca *pkitest.CA, leaf *pkitest.Leaf) string {
	t.Helper()
	src, err := mtls.NewSource(mtls.Config{Port: mtls.PortMember, CertFile: leaf.CertPath, KeyFile: leaf.KeyPath,
		CAFile: ca.CertPath, Policy: mtls.PolicyCA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := src.Listen(inner)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

func TestProbe(t *testing.T) {
	ca := pkitest.NewCA(t, "replication")
	addr := memberPort(t, ca, ca.Member("m1"))
	good, serverOnly := ca.Member("probe"), ca.ServerOnly("half")
	cases := []struct {
		name   string
		args   []string
		exit   int
		stdout []string
		stderr string
	}{
		{"mutual TLS works", []string{addr, "--ca", ca.CertPath, "--cert", good.CertPath, "--key", good.KeyPath},
			ExitOK, []string{"subject: CN=m1,O=mirrorkv test", "issuer:  CN=replication,O=mirrorkv test", "TLS 1.3", "mirrorkv-member/1",
				"acceptable CAs: CN=replication,O=mirrorkv test", "accepted:    yes (member acknowledgement received)", "mutual TLS works"}, ""},
		{"certificate without clientAuth", []string{addr, "--ca", ca.CertPath, "--cert", serverOnly.CertPath, "--key", serverOnly.KeyPath, "--wait", "200ms"},
			ExitFailure, []string{"accepted:    no", "reason 105 missing-client-auth"},
			"the server refused your certificate: certificate lacks the clientAuth extended key usage"},
		{"no CA to verify with", []string{addr, "--cert", good.CertPath, "--key", good.KeyPath, "--wait", "200ms"},
			ExitFailure, []string{"subject: CN=m1,O=mirrorkv test", "verified:    no"}, "could not be verified"},
		{"no certificate of ours", []string{addr, "--ca", ca.CertPath, "--wait", "200ms"},
			ExitFailure, []string{"sent ours:   no", "reason 109 no-certificate"}, "the server requires a client certificate and none was given"},
		{"cert without key", []string{addr, "--cert", good.CertPath}, ExitUsage, nil, "both --cert and --key"},
		{"nothing listening", []string{"127.0.0.1:1", "--ca", ca.CertPath}, ExitFailure, nil, "connect to 127.0.0.1:1"},
		{"no address", nil, ExitUsage, nil, "accepts 1 arg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runProbeCLI(t, tc.args...)
			if code != tc.exit {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.exit, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}

func TestProbe_JSON(t *testing.T) {
	ca := pkitest.NewCA(t, "replication")
	addr := memberPort(t, ca, ca.Member("m1"))
	good := ca.Member("probe")
	code, stdout, stderr := runProbeCLI(t, addr, "--ca", ca.CertPath, "--cert", good.CertPath, "--key", good.KeyPath, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep mtls.ProbeReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout)
	}
	if !rep.OK() || !rep.MemberAck || rep.Version != "TLS 1.3" || len(rep.Chain) != 1 {
		t.Errorf("report %+v", rep)
	}
}

// TestProbe_OpenSSLServer probes `openssl s_server -Verify` the way the VAST manual probes
// with `openssl s_client`.
func TestProbe_OpenSSLServer(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	srv, alice := rca.Member("server"), cca.Client("alice")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(t.Context(), "/usr/bin/openssl", "s_server", "-accept", addr, "-cert", srv.CertPath,
		"-key", srv.KeyPath, "-CAfile", cca.CertPath, "-Verify", "1", "-verify_return_error")
	stdin, _ := cmd.StdinPipe()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("openssl s_server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The readiness check above was one connection; s_server serves them one at a time.
	code, stdout, stderr := runProbeCLI(t, addr, "--ca", rca.CertPath, "--cert", alice.CertPath, "--key", alice.KeyPath, "--server-name", "localhost")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"subject: CN=server,O=mirrorkv test", "acceptable CAs: CN=clients,O=mirrorkv test", "accepted:    yes", "mutual TLS works"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}
