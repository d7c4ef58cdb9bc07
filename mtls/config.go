package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// Port says which port a Source serves.
type Port int

// Ports.
const (
	// PortMember is the member port, in both directions: raft, member RPCs, snapshots.
	PortMember Port = iota + 1
	// PortClient is the client port: the HTTPS server side (clients checked against the
	// client CA) and the CLI / Go client side (members checked against their CA).
	PortClient
)

func (p Port) String() string {
	switch p {
	case PortMember:
		return "member"
	case PortClient:
		return "client"
	}
	return fmt.Sprintf("port(%d)", int(p))
}

// Policy says which member certificates the member port accepts.
type Policy string

// Member policies.
const (
	// PolicyCA accepts any valid, unrevoked member certificate from the replication CA.
	PolicyCA Policy = "ca"
	// PolicyDN also requires the subject DN to belong to an authorised member (SetMembers),
	// checked on both ends.
	PolicyDN Policy = "dn"
)

// Defaults.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	// DefaultMaxHandshakes bounds the TLS handshakes in flight on one listener.
	DefaultMaxHandshakes = 1024
	// DefaultMaxHandshakesPerIP bounds the TLS handshakes in flight on one listener from
	// one source IP.
	DefaultMaxHandshakesPerIP = 128
)

// ALPN protocol names: the member port and the client port refuse each other's clients.
const (
	ALPNMember = "mirrorkv-member/1"
	ALPNHTTP   = "http/1.1"
)

// Config is what a Source is built from. Zero values are safe defaults.
type Config struct {
	Port     Port
	CertFile string // this side's certificate (PEM; may hold intermediates after the leaf)
	KeyFile  string // its private key (PEM: PKCS #8, PKCS #1 or SEC 1)
	// CAFile is the bundle the peers' certificates must chain to: the replication CA for
	// PortMember, the client CA for the client port's server side, the members' CA for the
	// CLI side. It may hold the old and the new CA during a rotation.
	CAFile  string
	CRLFile string // optional: CRLs (PEM or DER) issued by CAs in CAFile

	Policy Policy // PortMember: ca or dn (default dn)
	// Group is the group every member certificate must be bound to (its URI SAN
	// urn:mirrorkv:group:GROUP), ours and the peers', on the member port; empty means
	// pki.DefaultGroup. A certificate of another group is refused even when the same CA
	// signed it.
	Group   string
	Members map[string]string // initial authorised members, address -> canonical DN
	// JoinAddrs are member addresses a new member dials to learn the group's DNs. Under
	// policy dn, a dial to one of them is authorised, for as long as SetMembers names no DN
	// for that address, when the peer's certificate passes every other check and matches
	// one of JoinPins (sha256:FINGERPRINT or a DN); the acceptor still checks the new
	// member's DN, so only an authorised member gets in.
	JoinAddrs []string
	JoinPins  []string

	// MinVersion is tls.VersionTLS13 (member default) or tls.VersionTLS12 (client default).
	MinVersion uint16
	// CipherSuites restricts the TLS 1.2 suites; only AEAD ECDHE suites are accepted.
	// Empty means all of them. TLS 1.3 suites are not configurable.
	CipherSuites []uint16

	// AllowPublicCA accepts a CA bundle that the system trust store also trusts.
	AllowPublicCA bool
	// SystemRoots returns the system trust store; nil means x509.SystemCertPool.
	SystemRoots func() (*x509.CertPool, error)

	HandshakeTimeout time.Duration // acceptor side; default 10 s
	DialTimeout      time.Duration // Dial, including the ack; default 10 s
	// MaxHandshakes bounds the connections of one listener that are still in their
	// handshake (default 256), and MaxHandshakesPerIP those from one source IP (default 32).
	// A connection over either cap is closed at once, before any TLS work: a peer that
	// opens connections and sends nothing holds a slot for at most HandshakeTimeout, and
	// cannot keep the others out.
	MaxHandshakes      int
	MaxHandshakesPerIP int
	// LocalAddr, when set, is the source address of member dials: a member listening on one
	// address of a multi-homed host then reaches its peers from that same address.
	LocalAddr *net.TCPAddr
	Metrics   *Metrics // nil: no metrics
	Now       func() time.Time
}

// aeadSuites are the TLS 1.2 suites mirrorkv allows: ECDHE key exchange, AEAD record
// protection. Everything else (CBC, RSA key exchange, 3DES, RC4) is refused.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// withDefaults returns c with the zero values replaced.
func (c Config) withDefaults() Config {
	if c.Port == PortMember && c.Policy == "" {
		c.Policy = PolicyDN
	}
	if c.Group == "" {
		c.Group = pki.DefaultGroup
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
		if c.Port == PortMember {
			c.MinVersion = tls.VersionTLS13
		}
	}
	if len(c.CipherSuites) == 0 {
		c.CipherSuites = aeadSuites
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxHandshakesPerIP <= 0 {
		c.MaxHandshakesPerIP = DefaultMaxHandshakesPerIP
	}
	if c.SystemRoots == nil {
		c.SystemRoots = x509.SystemCertPool
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate returns every problem of the settings (not of the files: NewSource reads those).
func (c Config) Validate() error {
	var errs []error
	if c.Port != PortMember && c.Port != PortClient {
		errs = append(errs, fmt.Errorf("mtls port %d: want PortMember or PortClient", int(c.Port)))
	}
	for name, v := range map[string]string{"certificate": c.CertFile, "key": c.KeyFile, "CA": c.CAFile} {
		if v == "" {
			errs = append(errs, &CredentialError{Reason: reason.BadCredentials, Err: fmt.Errorf("no %s file configured; mutual TLS needs a certificate, its key and the CA bundle", name)})
		}
	}
	if c.Policy != "" && c.Policy != PolicyCA && c.Policy != PolicyDN {
		errs = append(errs, fmt.Errorf("mtls policy %q: want ca or dn", c.Policy))
	}
	if c.MinVersion != 0 && c.MinVersion != tls.VersionTLS12 && c.MinVersion != tls.VersionTLS13 {
		errs = append(errs, &CredentialError{Reason: reason.ProtocolTooOld, Err: fmt.Errorf("minimum TLS version %s: want TLS 1.3 or TLS 1.2, never older", tls.VersionName(c.MinVersion))})
	}
	for _, id := range c.CipherSuites {
		if !slices.Contains(aeadSuites, id) {
			errs = append(errs, &CredentialError{Reason: reason.NoCommonCipher, Err: fmt.Errorf("cipher suite %s: only ECDHE suites with AES-GCM or ChaCha20-Poly1305 are allowed", tls.CipherSuiteName(id))})
		}
	}
	if c.MaxHandshakes < 0 || c.MaxHandshakesPerIP < 0 {
		errs = append(errs, fmt.Errorf("handshake caps %d in total, %d per source IP: want positive numbers (0 for the defaults %d and %d)", c.MaxHandshakes, c.MaxHandshakesPerIP, DefaultMaxHandshakes, DefaultMaxHandshakesPerIP))
	}
	return errors.Join(errs...)
}
