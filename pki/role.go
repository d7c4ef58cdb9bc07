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

// Accesses. A client certificate without a role URI has AccessReadWrite.
const (
	AccessAdmin     Access = "admin"
	AccessReadWrite Access = "readwrite"
	AccessReadOnly  Access = "readonly"
)

// RoleURIPrefix starts the URI SAN that carries a client's access.
const RoleURIPrefix = "urn:mirrorkv:role:"

// ParseAccess reads admin, readwrite or readonly; the empty string means readwrite.
func ParseAccess(s string) (Access, error) {
	switch a := Access(strings.ToLower(s)); a {
	case "":
		return AccessReadWrite, nil
	case AccessAdmin, AccessReadWrite, AccessReadOnly:
		return a, nil
	}
	return "", fmt.Errorf("role %q: %w", s, ErrRole)
}

// URI returns the URI SAN that carries a.
func (a Access) URI() *url.URL { return &url.URL{Scheme: "urn", Opaque: "mirrorkv:role:" + string(a)} }

// AccessOf returns the access a client certificate carries: readwrite when it has no role
// URI, ErrRole when it has an unknown one or several.
func AccessOf(cert *x509.Certificate) (Access, error) {
	var found []string
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, RoleURIPrefix) {
			found = append(found, strings.TrimPrefix(s, RoleURIPrefix))
		}
	}
	switch len(found) {
	case 0:
		return AccessReadWrite, nil
	case 1:
		if found[0] == "" {
			return "", fmt.Errorf("empty role URI: %w", ErrRole)
		}
		return ParseAccess(found[0])
	}
	return "", fmt.Errorf("%d role URIs (%s): %w", len(found), strings.Join(found, ", "), ErrRole)
}
