package mtls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// mariadbGreeting is the first packet MariaDB 10.11.14 (Debian 12) sent, as captured: its
// capabilities include CLIENT_SSL because ssl_cert and ssl_key are set.
func mariadbGreeting(t testing.TB) []byte {
	b, err := hex.DecodeString("680000000a352e352e352d31302e31312e31342d4d6172696144422d302b646562313275322d6c6f6700" +
		"040000005a506073422f642a00feff080200ff81150000000000001d00000040467e676959615b264a2470006d7973716c5f6e" +
		"61746976655f70617373776f726400")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mysqlPacket frames payload as packet seq.
func mysqlPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// greetingWithout returns the captured greeting with the capability bits in clear cleared.
func greetingWithout(t testing.TB, clear uint16) []byte {
	g := bytes.Clone(mariadbGreeting(t))
	off := 4 + 1 + bytes.IndexByte(g[5:], 0) + 1 + 4 + 8 + 1
	binary.LittleEndian.PutUint16(g[off:], binary.LittleEndian.Uint16(g[off:])&^clear)
	return g
}

func TestParseMySQLGreeting(t *testing.T) {
	errPacket := append([]byte{0xff, 0x69, 0x04, '#', 'H', 'Y', '0', '0', '0'}, "Host '10.0.0.9' is not allowed to connect to this MariaDB server"...)
	cases := []struct {
		name    string
		payload []byte
		version string
		ssl     bool
		mysqlEr uint16 // an error packet's code
		bad     bool
	}{
		{name: "MariaDB 10.11 with TLS", payload: mariadbGreeting(t)[4:], version: "5.5.5-10.11.14-MariaDB-0+deb12u2-log", ssl: true},
		{name: "without CLIENT_SSL", payload: greetingWithout(t, mysqlSSL)[4:], version: "5.5.5-10.11.14-MariaDB-0+deb12u2-log"},
		{name: "pre-4.1 greeting ends after the capabilities", payload: mariadbGreeting(t)[4 : 4+1+37+15], version: "5.5.5-10.11.14-MariaDB-0+deb12u2-log", ssl: true},
		{name: "error packet", payload: errPacket, mysqlEr: 1129},
		{name: "protocol 9", payload: []byte{9, 'x', 0}, bad: true},
		{name: "empty", payload: nil, bad: true},
		{name: "version not terminated", payload: []byte{10, '5', '.', '5'}, bad: true},
		{name: "cut after the version", payload: []byte{10, '5', 0, 1, 2, 3}, bad: true},
		{name: "short error packet", payload: []byte{0xff, 1}, bad: true},
		{name: "an HTTP answer", payload: []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseMySQLGreeting(tc.payload)
			var me *MySQLError
			switch {
			case tc.mysqlEr != 0:
				if !errors.As(err, &me) || me.Code != tc.mysqlEr || me.SQLState != "HY000" || !strings.Contains(me.Message, "not allowed") {
					t.Fatalf("got %v, %v; want MySQL error %d", g, err, tc.mysqlEr)
				}
			case tc.bad:
				if err == nil || !errors.Is(err, errNotMySQL) {
					t.Fatalf("got %+v, %v; want an error wrapping errNotMySQL", g, err)
				}
			case err != nil:
				t.Fatalf("ParseMySQLGreeting: %v", err)
			case g.Version != tc.version || g.SSL() != tc.ssl:
				t.Fatalf("got version %q ssl %v; want %q %v", g.Version, g.SSL(), tc.version, tc.ssl)
			}
		})
	}
}

func TestMySQLSSLRequest(t *testing.T) {
	g, err := ParseMySQLGreeting(mariadbGreeting(t)[4:])
	if err != nil {
		t.Fatal(err)
	}
	req := mysqlSSLRequest(g, 1)
	seq, payload, err := ReadMySQLPacket(bytes.NewReader(req), 64)
	if err != nil || seq != 1 || len(payload) != 32 {
		t.Fatalf("SSLRequest: seq %d, %d bytes, %v; want seq 1, 32 bytes", seq, len(payload), err)
	}
	caps := binary.LittleEndian.Uint32(payload)
	if caps&mysqlSSL == 0 || caps&mysqlProtocol41 == 0 || caps&^g.Capabilities&^uint32(mysqlSSL) != 0 {
		t.Errorf("capabilities %#x: want CLIENT_SSL and PROTOCOL_41, nothing the server lacks (%#x)", caps, g.Capabilities)
	}
	if payload[8] != g.Charset || !bytes.Equal(payload[9:], make([]byte, 23)) {
		t.Errorf("charset %d, reserved %x: want %d and 23 zero bytes", payload[8], payload[9:], g.Charset)
	}
}

func FuzzParseMySQLGreeting(f *testing.F) {
	f.Add(mariadbGreeting(f)[4:])
	f.Add(greetingWithout(f, mysqlSSL)[4:])
	f.Add([]byte{0xff, 0x10, 0x04, '#', '0', '8', 'S', '0', '1', 'B', 'a', 'd'})
	f.Add([]byte{10, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		g, err := ParseMySQLGreeting(p)
		if (g == nil) == (err == nil) {
			t.Fatalf("greeting %v and error %v", g, err)
		}
		if g != nil {
			_ = mysqlSSLRequest(g, 1)
		}
	})
}

func FuzzReadMySQLPacket(f *testing.F) {
	f.Add(mariadbGreeting(f))
	f.Add([]byte{0xff, 0xff, 0xff, 0})
	f.Add([]byte{5, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, p, err := ReadMySQLPacket(bytes.NewReader(b), 1024)
		if err == nil && (len(p) > 1024 || len(p)+4 > len(b)) {
			t.Fatalf("payload of %d bytes from %d bytes of input", len(p), len(b))
		}
	})
}

// mysqlServer accepts one connection, sends greeting and, when it offers TLS, reads the
// SSLRequest and runs a mutual TLS handshake as MariaDB does with ssl_ca set.
func mysqlServer(t *testing.T, greeting []byte, leaf *pkitest.Leaf, clientCA *pkitest.CA) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(greeting); err != nil {
			return
		}
		seq, req, err := ReadMySQLPacket(c, 64)
		if err != nil || seq != 1 || len(req) != 32 || binary.LittleEndian.Uint32(req)&mysqlSSL == 0 {
			return
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{tlsCert(t, leaf)},
			ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool})
		if tc.Handshake() == nil {
			_, _ = io.Copy(io.Discard, tc) // waits for the client's login, as the server does
		}
	}()
	return ln.Addr().String()
}

func TestProbe_StartTLSMySQL(t *testing.T) {
	ca, other := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "stranger")
	server, good, stray := ca.Member("db1"), ca.Member("db2"), other.Member("db2")
	errPacket := mysqlPacket(0, append([]byte{0xff, 0x10, 0x04, '#', '0', '8', 'S', '0', '1'}, "Too many connections"...))
	cases := []struct {
		name     string
		greeting []byte
		leaf     *pkitest.Leaf
		want     reason.Code
		contains string
	}{
		{"good client certificate", mariadbGreeting(t), good, reason.OK, "mutual TLS works"},
		{"certificate from another CA", mariadbGreeting(t), stray, reason.UnknownCA, "refused your certificate"},
		{"no CLIENT_SSL", greetingWithout(t, mysqlSSL), good, reason.NoTLSOffered, "does not offer TLS"},
		{"error packet", errPacket, good, reason.RefusedByPeer, "ERROR 1040 (08S01): Too many connections"},
		{"not MySQL", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), good, reason.HandshakeFailed, "no MySQL greeting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := mysqlServer(t, tc.greeting, server, ca)
			rep, err := Probe(t.Context(), addr, ProbeOptions{StartTLS: StartTLSMySQL, CAFile: ca.CertPath,
				CertFile: tc.leaf.CertPath, KeyFile: tc.leaf.KeyPath, Wait: 300 * time.Millisecond})
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if rep.Code != tc.want || rep.OK() != (tc.want == reason.OK) || !strings.Contains(rep.Summary, tc.contains) {
				t.Fatalf("report code %d OK %v summary %q; want code %d containing %q", rep.Code, rep.OK(), rep.Summary, tc.want, tc.contains)
			}
			if tc.want == reason.OK && rep.Server != "MySQL protocol 10, 5.5.5-10.11.14-MariaDB-0+deb12u2-log" {
				t.Errorf("server %q", rep.Server)
			}
		})
	}
	// Without --starttls, the greeting arrives where a TLS record was expected.
	rep, err := Probe(t.Context(), mysqlServer(t, mariadbGreeting(t), server, ca), ProbeOptions{CAFile: ca.CertPath})
	if err != nil || rep.Code != reason.Plaintext || !strings.Contains(rep.Fix, "--starttls mysql") {
		t.Errorf("MySQL port without --starttls: %+v, %v; want reason %d and a fix naming --starttls mysql", rep, err, reason.Plaintext)
	}
	if _, err := Probe(t.Context(), "127.0.0.1:1", ProbeOptions{StartTLS: "smtp"}); err == nil || !strings.Contains(err.Error(), `only "mysql"`) {
		t.Errorf("--starttls smtp: %v", err)
	}
}

// TestProbe_ManticoreHTTPS probes a port that behaves as Manticore's https listener with
// the files of 'ca issue --profile manticore': TLS without client certificates, and 400 to
// plain HTTP. A port that answers 400 to everything is a plaintext port.
func TestProbe_ManticoreHTTPS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{Name: "Search-Root-CA", Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := pki.ProfileByName("manticore")
	is, err := ca.Issue(pki.IssueRequest{Name: "search1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.WriteProfile(dir, prof, is, ca.Certificate(), false); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	https := httpsAnswering400(t, &tls.Config{Certificates: []tls.Certificate{pair}})
	plain := httpsAnswering400(t, nil)

	resp, err := http.Get("http://" + https)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the https port: %v, %v; want 400", resp, err)
	}
	resp.Body.Close()
	rep, err := Probe(t.Context(), https, ProbeOptions{CAFile: filepath.Join(dir, "ca-cert.pem"), Wait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || !rep.Handshake || rep.ClientCertRequested || rep.Code != reason.NoCertificate || !strings.Contains(rep.Summary, "does not enforce mutual TLS") {
		t.Errorf("https port: %+v", rep)
	}
	rep, err = Probe(t.Context(), plain, ProbeOptions{CAFile: filepath.Join(dir, "ca-cert.pem"), Wait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Handshake || rep.Code != reason.Plaintext {
		t.Errorf("plaintext port: code %d %q; want %d", rep.Code, rep.Summary, reason.Plaintext)
	}
}

// httpsAnswering400 serves TLS with cfg and answers 400 to plain HTTP, as Manticore's
// https listener does; with a nil cfg it answers 400 to anything.
func httpsAnswering400(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if cfg == nil {
					_, _ = c.Read(make([]byte, 1024))
					_, _ = io.WriteString(c, answer)
					return
				}
				tc := tls.Server(c, cfg)
				err := tc.Handshake()
				if rh, ok := errors.AsType[tls.RecordHeaderError](err); ok && rh.Conn != nil {
					_, _ = io.WriteString(rh.Conn, answer)
					return
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
	return ln.Addr().String()
}
