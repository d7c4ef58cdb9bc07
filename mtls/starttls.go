package mtls

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// StartTLS protocols Probe knows: the plaintext exchange that precedes the TLS handshake
// on ports that upgrade in-band, as 'openssl s_client -starttls' does.
const (
	StartTLSMySQL = "mysql" // MySQL and MariaDB: the server's greeting, then an SSLRequest
)

// MySQL capability flags (the client/server protocol's CLIENT_*).
const (
	mysqlLongPassword     = 0x00000001
	mysqlProtocol41       = 0x00000200
	mysqlSSL              = 0x00000800
	mysqlSecureConnection = 0x00008000
	mysqlPluginAuth       = 0x00080000
)

// maxMySQLGreeting bounds the greeting Probe reads: real ones are about a hundred bytes,
// and the length comes from the peer.
const maxMySQLGreeting = 16 << 10

// MySQLGreeting is what the probe reads of a MySQL or MariaDB server's initial handshake
// packet (protocol version 10).
type MySQLGreeting struct {
	Protocol     byte
	Version      string // the server's version string, "10.11.14-MariaDB-0+deb12u2"
	ConnectionID uint32
	Capabilities uint32 // lower and, when sent, upper 16 bits
	Charset      byte   // 0 when the server did not send one
}

// SSL reports whether the server offers TLS (CLIENT_SSL).
func (g *MySQLGreeting) SSL() bool { return g.Capabilities&mysqlSSL != 0 }

// MySQLError is an error packet a server sends instead of its greeting, for example when
// it refuses the host or has too many connections.
type MySQLError struct {
	Code     uint16
	SQLState string
	Message  string
}

func (e *MySQLError) Error() string {
	if e.SQLState != "" {
		return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.SQLState, e.Message)
	}
	return fmt.Sprintf("ERROR %d: %s", e.Code, e.Message)
}

// errNotMySQL is wrapped by ParseMySQLGreeting for bytes that are no MySQL greeting.
var errNotMySQL = errors.New("not a MySQL or MariaDB greeting; is this the server's SQL port?")

// ReadMySQLPacket reads one packet: a 3-byte little-endian length, a sequence number, then
// the payload, of at most max bytes.
func ReadMySQLPacket(r io.Reader, max int) (seq byte, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("read packet header: %w", err)
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > max {
		return 0, nil, fmt.Errorf("packet of %d bytes, more than the %d expected: %w", n, max, errNotMySQL)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("read packet of %d bytes: %w", n, err)
	}
	return hdr[3], payload, nil
}

// ParseMySQLGreeting decodes the payload of a server's first packet. An error packet is
// returned as *MySQLError.
func ParseMySQLGreeting(p []byte) (*MySQLGreeting, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("empty greeting: %w", errNotMySQL)
	}
	if p[0] == 0xff {
		return nil, parseMySQLError(p[1:])
	}
	if p[0] != 10 {
		return nil, fmt.Errorf("protocol version %d, want 10: %w", p[0], errNotMySQL)
	}
	g := &MySQLGreeting{Protocol: p[0]}
	end := strings.IndexByte(string(p[1:]), 0)
	if end < 0 {
		return nil, fmt.Errorf("server version not terminated: %w", errNotMySQL)
	}
	g.Version = string(p[1 : 1+end])
	rest := p[2+end:]
	// connection id (4), auth-plugin-data part 1 (8), filler (1), capabilities (2)
	if len(rest) < 15 {
		return nil, fmt.Errorf("greeting ends after %d bytes: %w", len(p), errNotMySQL)
	}
	g.ConnectionID = binary.LittleEndian.Uint32(rest)
	g.Capabilities = uint32(binary.LittleEndian.Uint16(rest[13:]))
	if rest = rest[15:]; len(rest) >= 5 { // charset (1), status (2), capabilities upper half (2)
		g.Charset = rest[0]
		g.Capabilities |= uint32(binary.LittleEndian.Uint16(rest[3:])) << 16
	}
	return g, nil
}

func parseMySQLError(p []byte) error {
	if len(p) < 2 {
		return fmt.Errorf("error packet of %d bytes: %w", len(p)+1, errNotMySQL)
	}
	e := &MySQLError{Code: binary.LittleEndian.Uint16(p)}
	msg := p[2:]
	if len(msg) >= 6 && msg[0] == '#' {
		e.SQLState, msg = string(msg[1:6]), msg[6:]
	}
	e.Message = strings.ToValidUTF8(string(msg), "?")
	return e
}

// mysqlSSLRequest is the 32-byte SSLRequest packet, with sequence number seq, that asks
// the server to switch to TLS before anything else is sent.
func mysqlSSLRequest(g *MySQLGreeting, seq byte) []byte {
	b := make([]byte, 4+32)
	b[0], b[3] = 32, seq
	caps := uint32(mysqlLongPassword|mysqlProtocol41|mysqlSecureConnection|mysqlPluginAuth)&g.Capabilities | mysqlSSL
	binary.LittleEndian.PutUint32(b[4:], caps)
	binary.LittleEndian.PutUint32(b[8:], 1<<24) // max packet size
	b[12] = g.Charset
	if b[12] == 0 {
		b[12] = 33 // utf8_general_ci
	}
	return b // 23 reserved zero bytes follow the charset
}

// looksLikeMySQL reports whether err is a TLS client's refusal of what a MySQL server
// sends first: a greeting packet, sequence 0, protocol version 10, where a TLS record was
// expected.
func looksLikeMySQL(err error) bool {
	rh, ok := errors.AsType[tls.RecordHeaderError](err)
	return ok && rh.RecordHeader[3] == 0 && rh.RecordHeader[4] == 10
}

// checkStartTLS refuses a protocol Probe does not know.
func checkStartTLS(proto string) error {
	if proto != "" && proto != StartTLSMySQL {
		return fmt.Errorf("probe: --starttls %q: only %q is known", proto, StartTLSMySQL)
	}
	return nil
}

// startTLS runs the plaintext part of protocol on conn. It returns false when the probe
// ends there, with the report filled in.
func (p *prober) startTLS(conn net.Conn, deadline time.Time) (bool, error) {
	r := p.report
	r.StartTLS = p.opts.StartTLS
	_ = conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	seq, payload, err := ReadMySQLPacket(conn, maxMySQLGreeting)
	var g *MySQLGreeting
	if err == nil {
		g, err = ParseMySQLGreeting(payload)
	}
	if me, ok := errors.AsType[*MySQLError](err); ok {
		r.Code, r.Summary = reason.RefusedByPeer, "the server refused the connection before TLS: "+me.Error()
		r.Fix = "the message says why (host not allowed, too many connections); fix that on the server"
		return false, nil
	}
	if err != nil {
		r.Code, r.Summary = reason.HandshakeFailed, fmt.Sprintf("no MySQL greeting: %v", err)
		r.Fix = "check that HOST:PORT is the server's SQL port (MariaDB's port, 3306 by default)"
		return false, nil
	}
	r.Server = fmt.Sprintf("MySQL protocol %d, %s", g.Protocol, g.Version)
	if !g.SSL() {
		r.Code, r.Summary, r.Fix = reason.NoTLSOffered, "the server's greeting does not offer TLS (no CLIENT_SSL)", reason.NoTLSOffered.Fix()
		return false, nil
	}
	if _, err := conn.Write(mysqlSSLRequest(g, seq+1)); err != nil {
		return false, fmt.Errorf("send SSLRequest to %s: %w", p.report.Addr, err)
	}
	return true, nil
}
