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
		{"no role URI", nil, AccessReadWrite, nil},
		{"admin", []*url.URL{uri("urn:mirrorkv:role:admin")}, AccessAdmin, nil},
		{"upper case", []*url.URL{uri("URN:mirrorkv:role:ReadOnly")}, AccessReadOnly, nil},
		{"other URIs ignored", []*url.URL{uri("spiffe://x/y"), uri("urn:mirrorkv:role:readonly")}, AccessReadOnly, nil},
		{"unknown role", []*url.URL{uri("urn:mirrorkv:role:root")}, "", ErrRole},
		{"empty role", []*url.URL{uri("urn:mirrorkv:role:")}, "", ErrRole},
		{"two roles", []*url.URL{uri("urn:mirrorkv:role:admin"), uri("urn:mirrorkv:role:readonly")}, "", ErrRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AccessOf(&x509.Certificate{URIs: tc.uris})
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("AccessOf = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
