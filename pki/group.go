package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultGroup is the group a member certificate names when none is given; it is also the
// default of `serve --group`, so that a group set up without naming one works end to end.
const DefaultGroup = "mirrorkv"

// groupNSS starts the namespace-specific part of a member certificate's group: urn:mirrorkv:group:ID.
// The scheme and the namespace are compared without regard to case (RFC 8141 §3.1); the
// group ID itself is compared exactly.
const groupNSS = "group:"

// ErrGroup is returned by GroupOf for a member certificate with no group URI, several, or
// an unreadable one.
var ErrGroup = errors.New("member certificate names no group, or several; issue it with 'mirrorkv ca issue --group GROUP'")

// GroupURI is the URI SAN that binds a member certificate to group.
func GroupURI(group string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "mirrorkv:" + groupNSS + group}
}

// GroupOf returns the group a member certificate is bound to. Exactly one group URI must be
// present: a certificate naming two groups could serve either.
func GroupOf(cert *x509.Certificate) (string, error) {
	var found []string
	for _, u := range cert.URIs {
		if nss, ok := mirrorkvURN(u); ok {
			if g, ok := cutFold(nss, groupNSS); ok {
				found = append(found, g)
			}
		}
	}
	switch {
	case len(found) == 0:
		return "", fmt.Errorf("certificate %q: %w", DNOf(cert), ErrGroup)
	case len(found) > 1:
		return "", fmt.Errorf("certificate %q names %d groups (%s): %w", DNOf(cert), len(found), strings.Join(found, ", "), ErrGroup)
	case found[0] == "" || CheckName(found[0]) != nil:
		return "", fmt.Errorf("certificate %q names group %q, which is not a valid group name: %w", DNOf(cert), found[0], ErrGroup)
	}
	return found[0], nil
}

// mirrorkvURN returns the namespace-specific part of a urn:mirrorkv: URI, matching the
// scheme and namespace identifier case-insensitively. A URN with a query or fragment is
// not one of ours: refusing it keeps lint and the server from reading it two ways.
func mirrorkvURN(u *url.URL) (string, bool) {
	if !strings.EqualFold(u.Scheme, "urn") {
		return "", false
	}
	nss, ok := cutFold(u.Opaque, "mirrorkv:")
	if !ok {
		return "", false
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false
	}
	return nss, true
}

// cutFold is strings.CutPrefix with an ASCII case-insensitive prefix.
func cutFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
