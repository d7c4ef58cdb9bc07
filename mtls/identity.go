package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/mirrorkv/mirrorkv/reason"
)

// maxForwardedChain bounds the certificates VerifyChain parses: a leaf and a few
// intermediates.
const maxForwardedChain = 8

// VerifyChain checks a peer's certificate chain (DER, leaf first) that reached this member
// other than through its own handshake, such as an admin client's chain forwarded by the
// member the client connected to. It applies the rules of a handshake on this Source's
// port, with the current material: the chain must lead to the CA bundle, be valid now, fit
// the port's usage and not be revoked. It returns the verified leaf.
func (s *Source) VerifyChain(chain [][]byte) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, refuse(reason.NoCertificate, "no certificate was presented")
	}
	if len(chain) > maxForwardedChain {
		return nil, refuse(reason.BadCredentials, "a chain of %d certificates is longer than the %d allowed", len(chain), maxForwardedChain)
	}
	certs := make([]*x509.Certificate, 0, len(chain))
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, refuse(reason.BadCredentials, "parse a presented certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if err := s.authorise(s.mat.Load(), certs, nil, accepting, ""); err != nil {
		return nil, err
	}
	return certs[0], nil
}

// PeerDN is the canonical subject DN of the verified certificate of conn's peer; conn is a
// connection this package handed out (Listen, HTTPSListener, Dial).
func PeerDN(conn net.Conn) (string, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return "", fmt.Errorf("peer DN of a %T: not a TLS connection", conn)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", errors.New("peer DN: the peer presented no certificate")
	}
	return dnOf(certs[0]), nil
}
