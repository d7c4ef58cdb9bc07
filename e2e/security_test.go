package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	byteorder "encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// The attacks of docs/security.md, each against real member processes.

// memberRPC is a raw member RPC connection, as a process holding a stolen member
// certificate would open one: it passes the member port's handshake, then sends frames.
type memberRPC struct {
	c net.Conn
	r *bufio.Reader
}

// Wire details of the member RPC channel (cluster/frame.go): the header byte that selects
// the RPC service, the methods used here, and the error response kind.
const (
	rpcHeader            = 2
	rpcApply             = 1
	rpcAddMember         = 5
	rpcRemoveMember      = 6
	rpcTransfer          = 8
	rpcRespErr      byte = 1
)

func dialMemberRPC(t *testing.T, g *localgroup.Group, stolen *localgroup.Member, to string, group string) *memberRPC {
	t.Helper()
	src, err := mtls.NewSource(mtls.Config{Port: mtls.PortMember, CertFile: stolen.CertFile, KeyFile: stolen.KeyFile,
		CAFile: g.PKI.MemberCA, CRLFile: g.PKI.MemberCRL, Policy: mtls.PolicyCA, Group: group}, nil)
	if err != nil {
		t.Fatalf("load the stolen certificate: %v", err)
	}
	conn, err := src.Dial(t.Context(), to)
	if err != nil {
		t.Fatalf("dial %s with %s's certificate: %v", to, stolen.Name, err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte{rpcHeader}); err != nil {
		t.Fatal(err)
	}
	return &memberRPC{c: conn, r: bufio.NewReader(conn)}
}

// call sends one request and returns the response kind and, for an error, its reason code.
func (m *memberRPC) call(t *testing.T, method byte, payload []byte) (byte, reason.Code, string) {
	t.Helper()
	frame := byteorder.BigEndian.AppendUint32(nil, uint32(len(payload)+1))
	frame = append(append(frame, method), payload...)
	_ = m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := m.c.Write(frame); err != nil {
		t.Fatalf("send method %d: %v", method, err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(m.r, hdr[:]); err != nil {
		t.Fatalf("read the answer to method %d: %v", method, err)
	}
	body := make([]byte, byteorder.BigEndian.Uint32(hdr[:4])-1)
	if _, err := io.ReadFull(m.r, body); err != nil {
		t.Fatal(err)
	}
	if hdr[4] != rpcRespErr {
		return hdr[4], reason.OK, ""
	}
	code, n := byteorder.Uvarint(body)
	msgLen, k := byteorder.Uvarint(body[n:])
	return hdr[4], reason.Code(code), string(body[n+k : n+k+int(msgLen)])
}

func appendStr(b []byte, s string) []byte {
	return append(byteorder.AppendUvarint(b, uint64(len(s))), s...)
}

// A stolen member certificate carries replication and nothing more: on the primary's own
// member port it can neither authorise a DN, nor remove a member, nor add one, nor move the
// primary role, whatever it sends. Admin operations run on the primary only, for a client
// whose admin certificate passed the primary's own handshake.
func TestSecurity_StolenMemberCertificateIsNoAdmin(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	p := primaryOf(t, g)
	thief := others(g, p)[1]
	victim := others(g, p)[0]
	rpc := dialMemberRPC(t, g, thief, p.Advertise(), pki.DefaultGroup)
	evil := store.Member{Name: "evil", MemberAddr: "127.0.0.99:7001", DN: "CN=evil"}
	var addEvil []byte
	for _, s := range []string{evil.Name, evil.MemberAddr, evil.ClientURL, evil.DN} {
		addEvil = appendStr(addEvil, s)
	}
	addEvil = append(addEvil, 0)
	cases := []struct {
		name    string
		method  byte
		payload []byte
	}{
		{"authorise a DN with a raw command", rpcApply, store.EncodeCommand(store.Command{Op: store.OpSetMember, Member: evil})},
		{"withdraw a member with a raw command", rpcApply, store.EncodeCommand(store.Command{Op: store.OpRemoveMember, Member: store.Member{Name: victim.Name}})},
		{"add a member", rpcAddMember, addEvil},
		{"remove a member", rpcRemoveMember, appendStr(nil, victim.Name)},
		{"take the primary role", rpcTransfer, appendStr(nil, thief.Name)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kind, code, msg := rpc.call(t, tc.method, tc.payload)
			if kind != rpcRespErr || code != reason.NotAllowed {
				t.Fatalf("answer kind %d, reason %d %q; want a refusal with reason %d (not-allowed)", kind, code, msg, reason.NotAllowed)
			}
		})
	}
	c := clientOf(t, g, p)
	ms, err := c.Members(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("members after the attempts: %+v; want the three of the group, unchanged", ms)
	}
	st, err := c.Status(t.Context())
	if err != nil || st.Primary != p.Name || len(st.Members) != 3 {
		t.Fatalf("status after the attempts: %+v, %v; want %s still primary of 3", st, err, p.Name)
	}
	// A forwarded write of a client is what the channel is for, and still works.
	if kind, code, msg := rpc.call(t, rpcApply, store.EncodeCommand(store.Command{Op: store.OpPut, Key: "k", Value: []byte("v")})); kind == rpcRespErr {
		t.Fatalf("forwarded put refused: %d %s", code, msg)
	}
	// The admin API on a standby names the primary, and the client takes it there.
	admin := clientOf(t, g, victim)
	if err := admin.TransferLeadership(t.Context(), victim.Name); err != nil {
		t.Fatalf("transfer asked of a standby by an admin: %v", err)
	}
	eventually(t, 15*time.Second, victim.Name+" becomes primary", func() error {
		if got := primaryOf(t, g); got != victim {
			return fmt.Errorf("primary is %s", got.Name)
		}
		return nil
	})
}

// One replication CA may serve several groups: a member certificate names its group, and a
// member of one group is refused by another, at start and on the member port.
func TestSecurity_MemberCertificateBoundToGroup(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: fastServe})
	m := g.Members[0]
	other := &localgroup.Member{Name: "stranger", Host: "127.0.0.1"}
	is, err := g.PKI.ReplicationCA().Issue(pki.IssueRequest{Name: other.Name, Kind: pki.KindMember, Group: "other", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if other.CertFile, other.KeyFile, err = pki.WriteIssued(t.TempDir(), is); err != nil {
		t.Fatal(err)
	}
	// The member port: the stranger's certificate, from the same CA, is refused. The dial
	// trusts whatever answers, so that the refusal is m1's own.
	pair, err := tls.LoadX509KeyPair(other.CertFile, other.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", m.Advertise(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{mtls.ALPNMember},
		Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var ack [1]byte
		_, err = conn.Read(ack[:]) // TLS 1.3: a refusal arrives on the first read
		conn.Close()
	}
	if err == nil {
		t.Fatal("a member certificate of group other passed group mirrorkv's member port")
	}
	eventually(t, 10*time.Second, "m1 logs the wrong group", func() error {
		if !strings.Contains(m.Log(), reason.WrongGroup.Name()) {
			return errors.New("no wrong-group line in m1's log")
		}
		return nil
	})
	// At start: group mirrorkv's m1 certificate does not serve a member of group other.
	out, err := exec.Command(binary, "serve", "--name", m.Name, "--group", "other", "--dir", filepath.Join(t.TempDir(), "d"),
		"--member-listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
		"--member-cert", m.CertFile, "--member-key", m.KeyFile,
		"--member-ca", g.PKI.MemberCA, "--member-crl", g.PKI.MemberCRL,
		"--client-ca", g.PKI.ClientCA, "--client-crl", g.PKI.ClientCRL, "--bootstrap").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `group "mirrorkv", not "other"`) {
		t.Fatalf("serve --group other with a certificate of group mirrorkv: err=%v\n%s", err, out)
	}
}

// A revoked client certificate stops working within seconds of the new CRL landing in the
// client CRL file, on its live keep-alive connection too; no restart.
func TestSecurity_RevokedClientRefusedWithinSeconds(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: append([]string{"--reload-interval", "500ms"}, fastServe...)})
	certFile, keyFile, err := g.PKI.IssueClient("eve", pki.AccessReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoints: []string{g.Members[0].ClientURL}, TLS: tlsCfg, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(t.Context(), "eve", []byte("before")); err != nil {
		t.Fatalf("write before revocation: %v", err)
	}
	ca := g.PKI.ClientAuthority()
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(certs[0].SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.CRL(0); err != nil { // writes the CA's crl.pem, which the member watches
		t.Fatal(err)
	}
	revokedAt := time.Now()
	var refusedAfter time.Duration
	for time.Since(revokedAt) < 5*time.Second {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := c.Put(ctx, "eve", []byte("until the reload"))
		cancel()
		if err != nil {
			refusedAfter = time.Since(revokedAt)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if refusedAfter == 0 {
		t.Fatal("the revoked client could still write 5 s after the CRL was published")
	}
	t.Logf("revoked client refused %s after the CRL was written", refusedAfter.Round(time.Millisecond))
	// Refused for good: no later attempt, on a fresh connection either, gets through.
	for range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := c.Put(ctx, "eve", []byte("after the refusal"))
		cancel()
		if err == nil {
			t.Fatal("a write of the revoked client went through after it had been refused")
		}
		c.Close() // idle connections go: the next attempt handshakes again
	}
	admin := clientOf(t, g, g.Members[0])
	if v, _, err := admin.Get(t.Context(), "eve"); err != nil || string(v) == "after the refusal" {
		t.Fatalf("eve = %q (%v); a write after the refusal landed", v, err)
	}
}

// With --crl (MIRRORKV_CRL), the CLI refuses a member whose own certificate was revoked:
// a stolen member certificate cannot pose as the group to clients.
func TestSecurity_CLIRefusesRevokedMember(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	target := others(g, primaryOf(t, g))[0]
	data, err := os.ReadFile(target.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	kvGet := func() (string, error) {
		cmd := exec.Command(binary, "kv", "get", "nothing", "--endpoints", target.ClientURL)
		cmd.Env = append(os.Environ(), g.Env()...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := kvGet(); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("kv get before the revocation: %v\n%s\nwant a plain not-found", err, out)
	}
	ca := g.PKI.ReplicationCA()
	if err := ca.Revoke(certs[0].SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.CRL(0); err != nil {
		t.Fatal(err)
	}
	out, err := kvGet()
	if err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("kv get from a member whose certificate is revoked: %v\n%s\nwant a refusal saying it is revoked", err, out)
	}
}

// Members and clients are distinct trust domains: one CA for both, or a CA that the system
// trust store also holds, stops the member at start.
func TestSecurity_TrustDomainsApart(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: fastServe})
	m := g.Members[0]
	copyOfMemberCA := filepath.Join(t.TempDir(), "client-ca.crt")
	data, err := os.ReadFile(g.PKI.MemberCA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyOfMemberCA, data, 0o600); err != nil {
		t.Fatal(err)
	}
	systemCA := systemRoot(t)
	cases := []struct {
		name, clientCA string
		code           int
		want           string
	}{
		{"the member CA file as the client CA", g.PKI.MemberCA, 2, "same file"},
		{"a copy of the member CA as the client CA", copyOfMemberCA, 1, "in both the member CA bundle"},
		{"a CA of the system trust store as the client CA", systemCA, 1, "trusted by the system trust store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, "serve", "--name", "m9", "--dir", filepath.Join(t.TempDir(), "d"),
				"--member-listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
				"--member-cert", m.CertFile, "--member-key", m.KeyFile,
				"--member-ca", g.PKI.MemberCA, "--member-crl", g.PKI.MemberCRL,
				"--client-ca", tc.clientCA, "--no-client-crl", "--bootstrap")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve: %v\n%s\nwant exit %d saying %q", err, out, tc.code, tc.want)
			}
		})
	}
}

// systemRoot writes one CA certificate of the host's trust store to a file.
func systemRoot(t *testing.T) string {
	t.Helper()
	for _, bundle := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"} {
		data, err := os.ReadFile(bundle)
		if err != nil {
			continue
		}
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil || !c.IsCA {
				continue
			}
			path := filepath.Join(t.TempDir(), "system-root.crt")
			if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatal("no system trust store on this host: install Debian's ca-certificates (.ci/run does)")
	return ""
}

// Access levels are read canonically: a case variant of the role URI is the same level,
// never "no role" (which once meant readwrite), and a certificate with no level gets none.
func TestSecurity_AccessLevelsReadCanonically(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: fastServe})
	caDir := g.PKI.ClientAuthority().Dir()
	caCert, err := pki.ParseCertificates(mustRead(t, filepath.Join(caDir, pki.CACertFile)))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.ParsePrivateKey(mustRead(t, filepath.Join(caDir, pki.CAKeyFile)), nil)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string, uris ...string) *http.Client {
		key, err := pki.GenerateKey(pki.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		for _, s := range uris {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert[0], key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		keyPEM, err := pki.MarshalPrivateKey(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := client.LoadTLS(g.PKI.MemberCA, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	kvURL := g.Members[0].ClientURL + "/v1/kv/k"
	do := func(hc *http.Client, method string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), method, kvURL, strings.NewReader("v"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	cases := []struct {
		name           string
		uris           []string
		put, get       int
		refusalMention string
	}{
		{"case-variant readonly", []string{"urn:MirrorKV:role:readonly"}, 403, 404, "readonly"},
		{"upper-case scheme readonly", []string{"URN:mirrorkv:ROLE:READONLY"}, 403, 404, "readonly"},
		{"no role URI", nil, 403, 403, `"code":126`},
		{"role URI with a query", []string{"urn:mirrorkv:role:admin?x=1"}, 403, 403, `"code":126`},
		{"readwrite", []string{"urn:mirrorkv:role:readwrite"}, 200, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := issue("c-"+strings.ReplaceAll(tc.name, " ", "-"), tc.uris...)
			code, body := do(hc, http.MethodPut)
			if code != tc.put || (tc.refusalMention != "" && !strings.Contains(body, tc.refusalMention)) {
				t.Fatalf("PUT: %d %s; want %d mentioning %q", code, body, tc.put, tc.refusalMention)
			}
			if tc.get != 0 {
				if code, body := do(hc, http.MethodGet); code != tc.get {
					t.Fatalf("GET: %d %s; want %d", code, body, tc.get)
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A new member trusts its --join address only when the member there matches --join-pin: with
// a wrong pin it learns nothing and never joins; with the pin member add printed, it does.
func TestSecurity_JoinPinned(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: fastServe})
	first := g.Members[0]
	m, err := g.Grow(t.Context(), true) // the right pin, as localgroup passes it
	if err != nil {
		t.Fatalf("grow with the right pin: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := g.WaitInSync(ctx); err != nil {
		t.Fatalf("member joined with the right pin is not in sync: %v", err)
	}
	if err := m.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// A fresh member of the same name whose pin names someone else.
	if err := os.RemoveAll(m.Dir); err != nil {
		t.Fatal(err)
	}
	before := len(m.Log())
	if err := g.Start(m, "--join", first.Advertise(), "--join-pin", "CN=somebody-else"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the new member refuses the join address", func() error {
		if !strings.Contains(m.Log()[before:], reason.JoinPinMismatch.Name()) {
			return fmt.Errorf("no %s line in %s's log", reason.JoinPinMismatch.Name(), m.Name)
		}
		return nil
	})
	st, err := statusOf(t, g, m)
	if err == nil && st.Role != wire.RoleUnsync {
		t.Fatalf("%s joined through an unpinned address: role %s", m.Name, st.Role)
	}
}
