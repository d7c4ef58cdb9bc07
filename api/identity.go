package api

import (
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// level is what a client certificate allows; higher levels include the lower ones.
type level int

const (
	levelNone      level = iota // no access level, or an unreadable one: nothing is allowed
	levelReadOnly               // GET only
	levelReadWrite              // keys: read and write
	levelAdmin                  // everything: membership and leadership too
)

func (l level) String() string {
	switch l {
	case levelReadOnly:
		return "readonly"
	case levelReadWrite:
		return "readwrite"
	case levelAdmin:
		return "admin"
	}
	return "none"
}

// levelOf reads the access level from the certificate with pki.AccessOf, the one parser that
// `cert lint` uses too, so that what lint says and what the server does cannot drift. A
// certificate without a readable access level gets none.
func levelOf(cert *x509.Certificate) (level, error) {
	a, err := pki.AccessOf(cert)
	if err != nil {
		return levelNone, err
	}
	switch a {
	case pki.AccessReadOnly:
		return levelReadOnly, nil
	case pki.AccessReadWrite:
		return levelReadWrite, nil
	case pki.AccessAdmin:
		return levelAdmin, nil
	}
	return levelNone, fmt.Errorf("access %q: %w", a, pki.ErrUnknownAccess)
}

// clientKey names the client for its share of the read gate: its certificate's subject DN.
func clientKey(r *http.Request) string {
	if c := clientCert(r); c != nil {
		return pki.DNOf(c)
	}
	return ""
}

// clientCert returns the verified leaf of the client, or nil.
func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	if len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return r.TLS.VerifiedChains[0][0]
	}
	if len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0]
	}
	return nil
}

// authorize checks that the client's certificate carries at least the access level need.
func (s *Server) authorize(r *http.Request, need level) error {
	cert := clientCert(r)
	if cert == nil {
		return &Error{Status: http.StatusUnauthorized, Reason: reason.NoCertificate,
			Msg: "no client certificate: mirrorkv identifies every client by its certificate"}
	}
	have, err := levelOf(cert)
	if have >= need {
		return nil
	}
	fix := fmt.Sprintf("use a client certificate with the %s access level: mirrorkv ca issue --client --access %s", need, need)
	if err != nil {
		return &Error{Status: http.StatusForbidden, Reason: reason.NoAccess, Err: err, Fix: fix, Msg: err.Error()}
	}
	return &Error{Status: http.StatusForbidden,
		Msg: fmt.Sprintf("%s %s needs the %s access level; certificate %q has %s", r.Method, r.URL.Path, need, cert.Subject.CommonName, have),
		Fix: fix}
}
