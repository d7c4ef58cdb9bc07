package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Access is a client's permission, carried in its certificate as a URI SAN.
type Access string

// Accesses. Every client certificate names one in an access URI; a certificate without one
// has no access at all (ErrNoAccess).
const (
	AccessAdmin     Access = "admin"
	AccessReadWrite Access = "readwrite"
	AccessReadOnly  Access = "readonly"
)

// AccessURIPrefix starts the URI SAN that carries a client's access, in the form Issue
// writes it. AccessOf also reads the scheme, the namespace and "access:" in any case.
const AccessURIPrefix = "urn:mirrorkv:" + accessNSS

// LegacyAccessURIPrefix is how certificates issued before the access URI carried their
// access (urn:mirrorkv:role:ACCESS). AccessOf reads it as an access URI, so that those
// certificates keep working; one carrying both forms has two access URIs and is refused.
const LegacyAccessURIPrefix = "urn:mirrorkv:" + legacyAccessNSS

// accessNSS and legacyAccessNSS start the namespace-specific part of an access URI.
const (
	accessNSS       = "access:"
	legacyAccessNSS = "role:"
)

// ParseAccess reads admin, readwrite or readonly in any case; the empty string means
// readwrite, the access 'mirrorkv ca issue --client' grants when none is asked for.
func ParseAccess(s string) (Access, error) {
	switch a := Access(strings.ToLower(s)); a {
	case "":
		return AccessReadWrite, nil
	case AccessAdmin, AccessReadWrite, AccessReadOnly:
		return a, nil
	}
	return "", fmt.Errorf("access %q: %w", s, ErrUnknownAccess)
}

// URI returns the URI SAN that carries a.
func (a Access) URI() *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "mirrorkv:" + accessNSS + string(a)}
}

// AccessOf returns the access a client certificate carries. It is the one reader of access
// URIs: lint, the server and the API all decide with it. Exactly one access URI must be
// present (urn:mirrorkv:access:ACCESS, or the older urn:mirrorkv:role:ACCESS); the scheme,
// the namespace, "access:" and the access name are read without regard to case. It returns
// ErrNoAccess when there is no access URI, and ErrUnknownAccess for several, an unknown
// access, or an access URI with a query or fragment.
func AccessOf(cert *x509.Certificate) (Access, error) {
	var found []string
	for _, u := range cert.URIs {
		name, ok, err := accessName(u)
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
			return "", fmt.Errorf("empty access URI: %w", ErrUnknownAccess)
		}
		return ParseAccess(found[0])
	}
	return "", fmt.Errorf("%d access URIs (%s): %w", len(found), strings.Join(found, ", "), ErrUnknownAccess)
}

// accessName returns the access named by u when u is an access URI. An access URI with a
// query or fragment is refused rather than ignored, so that no reader can take it two ways.
func accessName(u *url.URL) (name string, ok bool, err error) {
	bare := *u
	bare.RawQuery, bare.ForceQuery, bare.Fragment, bare.RawFragment = "", false, "", ""
	nss, ok := mirrorkvURN(&bare)
	if !ok {
		return "", false, nil
	}
	if name, ok = cutFold(nss, accessNSS); !ok {
		if name, ok = cutFold(nss, legacyAccessNSS); !ok {
			return "", false, nil
		}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", true, fmt.Errorf("access URI %q has a query or fragment: %w", u.String(), ErrUnknownAccess)
	}
	return name, true, nil
}
