package api

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"

	"github.com/mirrorkv/mirrorkv/reason"
)

// role is what a client certificate allows; higher roles include the lower ones.
type role int

const (
	roleNone      role = iota // an unknown role URI: nothing is allowed
	roleReadOnly              // GET only
	roleReadWrite             // keys: read and write (the default without a role URI)
	roleAdmin                 // everything: membership and leadership too
)

// rolePrefix is the URI SAN prefix of a client's role: urn:mirrorkv:role:NAME.
const rolePrefix = "mirrorkv:role:"

func (r role) String() string {
	switch r {
	case roleReadOnly:
		return "readonly"
	case roleReadWrite:
		return "readwrite"
	case roleAdmin:
		return "admin"
	}
	return "none"
}

// roleOf reads the role from the certificate's URI SANs, with the rules of pki.AccessOf
// (api does not import pki): no role URI means readwrite; the role name is case-insensitive;
// an unknown name, an empty one or several role URIs mean none, so that a malformed
// certificate is refused rather than guessed at.
func roleOf(cert *x509.Certificate) role {
	got, seen := roleReadWrite, 0
	for _, u := range cert.URIs {
		if u.Scheme != "urn" || !strings.HasPrefix(u.Opaque, rolePrefix) {
			continue
		}
		seen++
		switch strings.ToLower(u.Opaque[len(rolePrefix):]) {
		case "readonly":
			got = roleReadOnly
		case "readwrite":
			got = roleReadWrite
		case "admin":
			got = roleAdmin
		default:
			got = roleNone
		}
	}
	if seen > 1 {
		return roleNone
	}
	return got
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

// authorize checks that the client's certificate carries at least the role need.
func (s *Server) authorize(r *http.Request, need role) error {
	cert := clientCert(r)
	if cert == nil {
		return &Error{Status: http.StatusUnauthorized, Reason: reason.NoCertificate,
			Msg: "no client certificate: mirrorkv identifies every client by its certificate"}
	}
	have := roleOf(cert)
	if have >= need {
		return nil
	}
	return &Error{Status: http.StatusForbidden,
		Msg: fmt.Sprintf("%s %s needs the %s role; certificate %q has role %s", r.Method, r.URL.Path, need, cert.Subject.CommonName, have),
		Fix: fmt.Sprintf("use a client certificate with the %s role: mirrorkv ca issue --client --role %s", need, need)}
}
