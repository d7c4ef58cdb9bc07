package mtls

import (
	"crypto/tls"
	"crypto/x509"
)

func (s *Source) alpn() []string {
	if s.cfg.Port == PortMember {
		return []string{ALPNMember}
	}
	return []string{ALPNHTTP}
}

// serverConfig is built once per snapshot and handed out by GetConfigForClient, so a new
// CA bundle applies to the very next handshake.
func (s *Source) serverConfig(m *material) *tls.Config {
	return &tls.Config{
		MinVersion:   s.cfg.MinVersion,
		CipherSuites: s.cfg.CipherSuites,
		NextProtos:   s.alpn(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    m.roots,
		Time:         s.cfg.Now,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.cert, nil
		},
		// VerifyConnection runs on resumed sessions too; VerifyPeerCertificate does not.
		VerifyConnection: func(cs tls.ConnectionState) error {
			var chain []*x509.Certificate
			if len(cs.VerifiedChains) > 0 {
				chain = cs.VerifiedChains[0]
			}
			return s.authorise(s.mat.Load(), cs.PeerCertificates, chain, accepting, "")
		},
	}
}

// dialConfig is built per dial from the snapshot m. Go's client-side verification would
// check the host name and accept a chain fit for ANY usage; members are identified by the
// CA (policy ca) or the DN (policy dn) instead, so the whole check runs in
// VerifyConnection against m, with InsecureSkipVerify only turning Go's own check off.
// The CA names the acceptor asks for are kept in asked, for diagnosing a refusal.
func (s *Source) dialConfig(m *material, addr string, asked *[][]byte) *tls.Config {
	return &tls.Config{
		MinVersion:         s.cfg.MinVersion,
		CipherSuites:       s.cfg.CipherSuites,
		NextProtos:         s.alpn(),
		InsecureSkipVerify: true,
		ClientSessionCache: m.sessions,
		Time:               s.cfg.Now,
		// Always send our certificate, even when the server names other CAs, so that a
		// refusal comes back with the server's real reason, not "certificate required".
		GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if asked != nil {
				*asked = cri.AcceptableCAs
			}
			return m.cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.authorise(m, cs.PeerCertificates, nil, dialling, addr)
		},
	}
}

// ClientTLSConfig is the client side of the client port, for the CLI and the Go client: it
// verifies the member's certificate and name against the CA file (at least TLS 1.2) and
// always sends the current client certificate. The CA pool is the one current at the call.
func (s *Source) ClientTLSConfig() *tls.Config {
	m := s.mat.Load()
	return &tls.Config{
		MinVersion:   max(s.cfg.MinVersion, tls.VersionTLS12),
		CipherSuites: s.cfg.CipherSuites,
		RootCAs:      m.roots,
		Time:         s.cfg.Now,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.mat.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			var chain []*x509.Certificate
			if len(cs.VerifiedChains) > 0 {
				chain = cs.VerifiedChains[0]
			}
			return s.authorise(s.mat.Load(), cs.PeerCertificates, chain, dialling, "")
		},
	}
}
