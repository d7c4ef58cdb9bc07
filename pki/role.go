package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Role is what a certificate is for.
type Role int

// Roles. A member certificate serves the member port in both directions and the server side
// of the client port; a client certificate only authenticates a client.
const (
	RoleMember Role = iota // member
	RoleClient             // client
)

func (r Role) String() string {
	if r == RoleClient {
		return "client"
	}
	return "member"
}

// ParseRole reads "member" or "client"; the empty string means member.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(s) {
	case "", "member":
		return RoleMember, nil
	case "client":
		return RoleClient, nil
	}
	return 0, fmt.Errorf("role %q: use member or client", s)
}

// Access is a client's permission, carried in its certificate as a URI SAN.
type Access string

// Accesses. Every client certificate names one in a role URI; a certificate without one
// has no access at all (ErrNoAccess).
const (
	AccessAdmin     Access = "admin"
	AccessReadWrite Access = "readwrite"
	AccessReadOnly  Access = "readonly"
)

// RoleURIPrefix starts the URI SAN that carries a client's access, in the form Issue
// writes it. AccessOf also reads the scheme, the namespace and "role:" in any case.
const RoleURIPrefix = "urn:mirrorkv:role:"

// roleNSS starts the namespace-specific part of a role URI: urn:mirrorkv:role:ACCESS.
const roleNSS = "role:"

// ParseAccess reads admin, readwrite or readonly in any case; the empty string means
// readwrite, the access 'mirrorkv ca issue --client' grants when none is asked for.
func ParseAccess(s string) (Access, error) {
	switch a := Access(strings.ToLower(s)); a {
	case "":
		return AccessReadWrite, nil
	case AccessAdmin, AccessReadWrite, AccessReadOnly:
		return a, nil
	}
	return "", fmt.Errorf("access %q: %w", s, ErrRole)
}

// URI returns the URI SAN that carries a.
func (a Access) URI() *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "mirrorkv:" + roleNSS + string(a)}
}

// AccessOf returns the access a client certificate carries. It is the one reader of role
// URIs: lint, the server and the API all decide with it. Exactly one role URI must be
// present; the scheme, the namespace, "role:" and the access name are read without regard
// to case. It returns ErrNoAccess when there is no role URI, and ErrRole for several, an
// unknown access, or a role URI with a query or fragment.
func AccessOf(cert *x509.Certificate) (Access, error) {
	var found []string
	for _, u := range cert.URIs {
		name, ok, err := roleName(u)
		if err != nil {
			return "", err
		}
		if ok {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("certificate %q: %w", DNOf(cert), ErrNoAccess)
	case 1:
		if found[0] == "" {
			return "", fmt.Errorf("empty role URI: %w", ErrRole)
		}
		return ParseAccess(found[0])
	}
	return "", fmt.Errorf("%d role URIs (%s): %w", len(found), strings.Join(found, ", "), ErrRole)
}

// roleName returns the access named by u when u is a role URI. A role URI with a query or
// fragment is refused rather than ignored, so that no reader can take it two ways.
func roleName(u *url.URL) (name string, ok bool, err error) {
	bare := *u
	bare.RawQuery, bare.ForceQuery, bare.Fragment, bare.RawFragment = "", false, "", ""
	nss, ok := mirrorkvURN(&bare)
	if !ok {
		return "", false, nil
	}
	if name, ok = cutFold(nss, roleNSS); !ok {
		return "", false, nil
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", true, fmt.Errorf("role URI %q has a query or fragment: %w", u.String(), ErrRole)
	}
	return name, true, nil
}
