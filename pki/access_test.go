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
		{"no access URI", nil, "", ErrNoAccess},
		{"only other URIs", []*url.URL{uri("spiffe://x/y"), GroupURI("g1")}, "", ErrNoAccess},
		{"admin", []*url.URL{uri("urn:mirrorkv:access:admin")}, AccessAdmin, nil},
		{"older role URI", []*url.URL{uri("urn:mirrorkv:role:admin")}, AccessAdmin, nil},
		{"as Issue writes it, spelt out", []*url.URL{uri(AccessURIPrefix + "readonly")}, AccessReadOnly, nil},
		{"older prefix", []*url.URL{uri(LegacyAccessURIPrefix + "readonly")}, AccessReadOnly, nil},
		{"both spellings", []*url.URL{uri("urn:mirrorkv:access:admin"), uri("urn:mirrorkv:role:admin")}, "", ErrUnknownAccess},
		{"upper case access URI", []*url.URL{uri("URN:MirrorKV:ACCESS:ReadWrite")}, AccessReadWrite, nil},
		{"access query", []*url.URL{uri("urn:mirrorkv:access:admin?x")}, "", ErrUnknownAccess},
		{"upper case access", []*url.URL{uri("urn:mirrorkv:role:ReadOnly")}, AccessReadOnly, nil},
		{"mixed case namespace", []*url.URL{uri("urn:MirrorKV:role:readonly")}, AccessReadOnly, nil},
		{"upper case everything", []*url.URL{uri("URN:mirrorkv:ROLE:Admin")}, AccessAdmin, nil},
		{"as Issue writes it", []*url.URL{AccessReadWrite.URI()}, AccessReadWrite, nil},
		{"other URIs ignored", []*url.URL{uri("spiffe://x/y"), uri("urn:mirrorkv:role:readonly")}, AccessReadOnly, nil},
		{"query", []*url.URL{uri("urn:mirrorkv:role:readonly?x=1")}, "", ErrUnknownAccess},
		{"empty query", []*url.URL{uri("urn:mirrorkv:role:readonly?")}, "", ErrUnknownAccess},
		{"fragment", []*url.URL{uri("urn:mirrorkv:role:admin#x")}, "", ErrUnknownAccess},
		{"unknown role", []*url.URL{uri("urn:mirrorkv:role:root")}, "", ErrUnknownAccess},
		{"empty role", []*url.URL{uri("urn:mirrorkv:role:")}, "", ErrUnknownAccess},
		{"two roles", []*url.URL{uri("urn:mirrorkv:role:admin"), uri("urn:mirrorkv:role:readonly")}, "", ErrUnknownAccess},
		{"same role twice", []*url.URL{uri("urn:mirrorkv:role:admin"), uri("URN:MIRRORKV:ROLE:ADMIN")}, "", ErrUnknownAccess},
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
