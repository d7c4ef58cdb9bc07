package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// ProbeOptions configure Probe. Without CAFile the server's chain is shown but not
// verified, and the probe cannot succeed.
type ProbeOptions struct {
	CAFile     string // CA bundle to verify the server with
	CertFile   string // our certificate, to test mutual TLS (with KeyFile)
	KeyFile    string
	ServerName string        // name to verify and send as SNI; default: the host of addr
	Timeout    time.Duration // connect and handshake; default 10 s
	// Wait is how long to wait after the handshake for a refusal (TLS 1.3 sends it then)
	// or the member port's acknowledgement; default 1 s.
	Wait time.Duration
	Now  func() time.Time
	// StartTLS names the plaintext exchange to run before the handshake (StartTLSMySQL);
	// empty for a port that speaks TLS from the first byte.
	StartTLS string
}

// ProbeCert is one certificate the server presented.
type ProbeCert struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
}

// ProbeReport is what Probe saw. OK says whether mutual TLS fully worked.
type ProbeReport struct {
	Addr                string      `json:"addr"`
	StartTLS            string      `json:"starttls,omitempty"`
	Server              string      `json:"server,omitempty"` // what the server said before TLS
	Chain               []ProbeCert `json:"chain"`
	Version             string      `json:"version,omitempty"`
	CipherSuite         string      `json:"cipher_suite,omitempty"`
	ALPN                string      `json:"alpn,omitempty"`
	ClientCertRequested bool        `json:"client_cert_requested"`
	AcceptableCAs       []string    `json:"acceptable_cas,omitempty"`
	ClientCertSent      bool        `json:"client_cert_sent"`
	Verified            bool        `json:"verified"`
	Handshake           bool        `json:"handshake"`
	Accepted            bool        `json:"accepted"`
	MemberAck           bool        `json:"member_ack"`
	Code                reason.Code `json:"reason"`
	Summary             string      `json:"summary"`
	Fix                 string      `json:"fix,omitempty"`
}

// OK reports whether the mutual handshake succeeded, the server's chain was verified and
// the server kept the connection.
func (r *ProbeReport) OK() bool { return r.Verified && r.ClientCertSent && r.Accepted }

// Probe connects to addr the way openssl s_client would, and reports the chain, the
// negotiated parameters, what the server asks of clients, and whether it accepted ours.
// The error is for problems on this side (unreadable files, no connection at all); a
// refused handshake is a report with a reason.
func Probe(ctx context.Context, addr string, opts ProbeOptions) (*ProbeReport, error) {
	p, err := newProber(addr, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w; check the address and that the server is up", addr, err)
	}
	defer raw.Close()
	if opts.StartTLS != "" {
		deadline, _ := ctx.Deadline()
		if goOn, err := p.startTLS(raw, deadline); !goOn {
			return p.report, err
		}
	}
	conn := tls.Client(raw, p.config())
	if err := conn.HandshakeContext(ctx); err != nil {
		p.fail(err)
		return p.report, nil
	}
	p.handshaken(conn.ConnectionState())
	p.awaitVerdict(conn)
	return p.report, nil
}

type prober struct {
	opts     ProbeOptions
	roots    *x509.CertPool
	cert     *tls.Certificate
	report   *ProbeReport
	verifyOK error // nil once the chain verified
}

func newProber(addr string, opts ProbeOptions) (*prober, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Wait <= 0 {
		opts.Wait = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("probe %q: want HOST:PORT: %w", addr, err)
		}
		opts.ServerName = host
	}
	if err := checkStartTLS(opts.StartTLS); err != nil {
		return nil, err
	}
	p := &prober{opts: opts, report: &ProbeReport{Addr: addr}, verifyOK: errors.New("not verified")}
	if opts.CAFile != "" {
		data, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, credErr(reason.BadCredentials, opts.CAFile, "read: %w", err)
		}
		if _, p.roots, err = parseCAs(opts.CAFile, data); err != nil {
			return nil, err
		}
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("probe: give both --cert and --key, or neither")
	}
	if opts.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, credErr(reason.BadCredentials, opts.CertFile, "load certificate and key %s: %w", opts.KeyFile, err)
		}
		p.cert = &pair
	}
	return p, nil
}

// config turns Go's verification off only to see the chain whatever it is; verify then
// checks it against the CA file, and refuses to go on (sending our certificate) if it fails.
func (p *prober) config() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         p.opts.ServerName,
		NextProtos:         []string{ALPNMember, ALPNHTTP},
		InsecureSkipVerify: true,
		Time:               p.opts.Now,
		GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			p.report.ClientCertRequested = true
			p.report.AcceptableCAs = caNames(cri.AcceptableCAs)
			if p.cert == nil {
				return &tls.Certificate{}, nil
			}
			p.report.ClientCertSent = true
			return p.cert, nil
		},
		VerifyConnection: p.verify,
	}
}

func (p *prober) verify(cs tls.ConnectionState) error {
	for _, c := range cs.PeerCertificates {
		p.report.Chain = append(p.report.Chain, probeCert(c))
	}
	if p.roots == nil || len(cs.PeerCertificates) == 0 {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if err := pki.CheckValidity(leaf, p.opts.Now()); err != nil {
		p.verifyOK = err
		return err
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, DNSName: p.opts.ServerName,
		CurrentTime: p.opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	p.verifyOK = err
	return err
}

func probeCert(c *x509.Certificate) ProbeCert {
	pc := ProbeCert{Subject: dnOf(c), Issuer: c.Issuer.ToRDNSequence().String(), Serial: c.SerialNumber.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), DNSNames: c.DNSNames}
	for _, ip := range c.IPAddresses {
		pc.IPs = append(pc.IPs, ip.String())
	}
	return pc
}

// caNames decodes the DER distinguished names a server lists in its CertificateRequest.
func caNames(ders [][]byte) []string {
	var names []string
	for _, der := range ders {
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) > 0 {
			names = append(names, fmt.Sprintf("(undecodable name, %d bytes)", len(der)))
			continue
		}
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		names = append(names, n.ToRDNSequence().String())
	}
	return names
}

func (p *prober) handshaken(cs tls.ConnectionState) {
	r := p.report
	r.Handshake = true
	r.Version = tls.VersionName(cs.Version)
	r.CipherSuite = tls.CipherSuiteName(cs.CipherSuite)
	r.ALPN = cs.NegotiatedProtocol
	r.Verified = p.roots != nil && p.verifyOK == nil
}

// awaitVerdict waits for what TLS 1.3 servers send after the handshake: a refusal of our
// certificate, the member port's acknowledgement, or nothing while they wait for a request.
func (p *prober) awaitVerdict(conn *tls.Conn) {
	_ = conn.SetReadDeadline(p.opts.Now().Add(p.opts.Wait))
	var b [1]byte
	_, err := io.ReadFull(conn, b[:])
	switch {
	case err == nil:
		p.report.MemberAck = b[0] == ackByte && p.report.ALPN == ALPNMember
		p.accepted()
	case isTimeout(err):
		p.accepted()
	case errors.Is(err, io.EOF):
		p.fail(ErrNoAck)
	default:
		p.fail(err)
	}
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func (p *prober) accepted() {
	r := p.report
	r.Accepted = true
	switch {
	case p.roots == nil:
		r.Code, r.Summary = reason.UnknownCA, "handshake completed, but the server's chain could not be verified: no --ca given"
		r.Fix = "pass the CA that signed the server's certificate with --ca"
	case !r.ClientCertSent && r.ClientCertRequested:
		r.Code, r.Summary, r.Fix = reason.NoCertificate, "the server asked for a client certificate and none was given", reason.NoCertificate.Fix()
	case !r.ClientCertSent:
		r.Code, r.Summary = reason.NoCertificate, "the server did not ask for a client certificate: it does not enforce mutual TLS"
		r.Fix = "mirrorkv members always require one; is this a mirrorkv port?"
	default:
		r.Code, r.Summary = reason.OK, "mutual TLS works: the server verified and kept the connection"
	}
}

// fail explains a failed handshake, refining a bare alert with what our own certificate
// shows: the side that refused only told us "bad certificate".
func (p *prober) fail(err error) {
	r := p.report
	code := classify(err)
	if own := p.selfDiagnose(); own != reason.OK && (code == reason.RefusedByPeer || code == reason.NoCertificate || code == reason.UnknownCA && r.Handshake) {
		code = own
	}
	r.Code, r.Fix = code, code.Fix()
	if looksLikeMySQL(err) {
		r.Fix = "the port speaks the MySQL protocol, which upgrades to TLS in-band: add --starttls mysql"
	}
	switch {
	case p.verifyOK != nil && p.roots != nil && len(r.Chain) > 0 && !r.Handshake:
		r.Summary = fmt.Sprintf("the server's certificate failed verification: %s (%v)", code.Text(), err)
	case r.ClientCertSent:
		r.Summary = fmt.Sprintf("the server refused your certificate: %s (%v)", code.Text(), err)
	case code == reason.NoCertificate:
		r.Summary = fmt.Sprintf("the server requires a client certificate and none was given (%v)", err)
	default:
		r.Summary = fmt.Sprintf("the handshake failed: %s (%v)", code.Text(), err)
	}
}

// selfDiagnose checks our own certificate as a server would.
func (p *prober) selfDiagnose() reason.Code {
	if p.cert == nil {
		return reason.NoCertificate
	}
	leaf, err := x509.ParseCertificate(p.cert.Certificate[0])
	if err != nil {
		return reason.BadCredentials
	}
	if err := pki.CheckValidity(leaf, p.opts.Now()); err != nil {
		return reason.Of(err, reason.HandshakeFailed)
	}
	if err := pki.CheckUsage(leaf, pki.UseClientAuth); err != nil {
		return reason.Of(err, reason.HandshakeFailed)
	}
	if cas := p.report.AcceptableCAs; len(cas) > 0 && !slices.Contains(cas, leaf.Issuer.ToRDNSequence().String()) {
		return reason.UnknownCA
	}
	return reason.OK
}
