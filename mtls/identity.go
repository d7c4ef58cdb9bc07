package mtls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

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
