package pki

import (
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
)

func TestAccessOf(t *testing.T) {
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tc := range []struct {
		name string
		uris []*url.URL
		want Access
		err  error
	}{
		{"no role URI", nil, "", ErrNoAccess},
		{"only other URIs", []*url.URL{uri("spiffe://x/y"), GroupURI("g1")}, "", ErrNoAccess},
		{"admin", []*url.URL{uri("urn:mirrorkv:role:admin")}, AccessAdmin, nil},
		{"upper case access", []*url.URL{uri("urn:mirrorkv:role:ReadOnly")}, AccessReadOnly, nil},
		{"mixed case namespace", []*url.URL{uri("urn:MirrorKV:role:readonly")}, AccessReadOnly, nil},
		{"upper case everything", []*url.URL{uri("URN:mirrorkv:ROLE:Admin")}, AccessAdmin, nil},
		{"as Issue writes it", []*url.URL{AccessReadWrite.URI()}, AccessReadWrite, nil},
		{"other URIs ignored", []*url.URL{uri("spiffe://x/y"), uri("urn:mirrorkv:role:readonly")}, AccessReadOnly, nil},
		{"query", []*url.URL{uri("urn:mirrorkv:role:readonly?x=1")}, "", ErrRole},
		{"empty query", []*url.URL{uri("urn:mirrorkv:role:readonly?")}, "", ErrRole},
		{"fragment", []*url.URL{uri("urn:mirrorkv:role:admin#x")}, "", ErrRole},
		{"unknown role", []*url.URL{uri("urn:mirrorkv:role:root")}, "", ErrRole},
		{"empty role", []*url.URL{uri("urn:mirrorkv:role:")}, "", ErrRole},
		{"two roles", []*url.URL{uri("urn:mirrorkv:role:admin"), uri("urn:mirrorkv:role:readonly")}, "", ErrRole},
		{"same role twice", []*url.URL{uri("urn:mirrorkv:role:admin"), uri("URN:MIRRORKV:ROLE:ADMIN")}, "", ErrRole},
		{"other namespace", []*url.URL{uri("urn:other:role:admin")}, "", ErrNoAccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AccessOf(&x509.Certificate{URIs: tc.uris})
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("AccessOf = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
