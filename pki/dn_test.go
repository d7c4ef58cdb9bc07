package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"
)

func TestCanonicalDN(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"RFC 4514", "CN=m1,O=Acme", "CN=m1,O=Acme", nil},
		{"RFC 4514 with spaces", " cn=m1 ,  o=Acme ", "CN=m1,O=Acme", nil},
		{"openssl slash form", "/O=Acme/CN=m1", "CN=m1,O=Acme", nil},
		{"openssl default output", "O = Acme, CN = m1", "CN=m1,O=Acme", nil},
		{"openssl output with prefix", "subject=O = Acme, CN = m1\n", "CN=m1,O=Acme", nil},
		{"escaped trailing space kept", `CN=m1\ `, `CN=m1\ `, nil},
		{"openssl quotes specials", `O = "Acme, Inc.", CN = m1`, `CN=m1,O=Acme\, Inc.`, nil},
		{"escaped comma", `CN=m1,O=Acme\, Inc.`, `CN=m1,O=Acme\, Inc.`, nil},
		{"hex pair escape", `CN=caf\C3\A9`, "CN=café", nil},
		{"multi-valued RDN sorted", "CN=m1+OU=b,O=Acme", "CN=m1+OU=b,O=Acme", nil},
		{"multi-valued RDN reordered", "OU=b+CN=m1,O=Acme", "CN=m1+OU=b,O=Acme", nil},
		{"long keywords and OIDs", "commonName=m1,2.5.4.10=Acme", "CN=m1,O=Acme", nil},
		{"hex string value reads as text", "CN=#0c026d31", "CN=m1", nil},
		{"hex non-string stays hex", "1.2.3.4=#020101", "1.2.3.4=#020101", nil},
		{"leading hash escaped", `CN=\#1`, `CN=\#1`, nil},
		{"keeps value case", "CN=Member1", "CN=Member1", nil},
		{"empty", "  ", "", ErrEmptyDN},
		{"no equals", "m1", "", ErrBadDN},
		{"unknown keyword", "XX=1", "", ErrBadDN},
		{"empty RDN", "CN=a,,O=b", "", ErrBadDN},
		{"trailing backslash", `CN=a\`, "", ErrBadDN},
		{"bad hex value", "CN=#zz", "", ErrBadDN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalDN(tc.in)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("CanonicalDN(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

// subjectCert returns a certificate whose raw subject is rdns.
func subjectCert(t *testing.T, rdns pkix.RDNSequence) *x509.Certificate {
	t.Helper()
	raw, err := asn1.Marshal(rdns)
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{RawSubject: raw}
}

func TestDNOf(t *testing.T) {
	cn, o, ou := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 11}
	for _, tc := range []struct {
		name string
		rdns pkix.RDNSequence
		want string
	}{
		{"reversed order", pkix.RDNSequence{{{Type: o, Value: "Acme"}}, {{Type: cn, Value: "m1"}}}, "CN=m1,O=Acme"},
		{"specials escaped", pkix.RDNSequence{{{Type: cn, Value: ` a,b+c"d\e<f>g;h=#`}}}, `CN=\ a\,b\+c\"d\\e\<f\>g\;h\=#`},
		{"leading hash", pkix.RDNSequence{{{Type: cn, Value: "#1 "}}}, `CN=\#1\ `},
		{"control byte", pkix.RDNSequence{{{Type: cn, Value: "a\x01"}}}, `CN=a\01`},
		{"multi-valued sorted", pkix.RDNSequence{{{Type: ou, Value: "x"}, {Type: cn, Value: "m1"}}}, "CN=m1+OU=x"},
		{"unknown OID", pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{1, 2, 3}, Value: "v"}}}, "1.2.3=v"},
		{"non-string value", pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{1, 2, 3}, Value: 1}}}, "1.2.3=#020101"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := subjectCert(t, tc.rdns)
			if got := DNOf(c); got != tc.want {
				t.Fatalf("DNOf = %q, want %q", got, tc.want)
			}
			// The property mtls and cluster rely on: what DNOf prints reads back the same.
			if got, err := CanonicalDN(DNOf(c)); err != nil || got != tc.want {
				t.Fatalf("CanonicalDN(DNOf) = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDNOf_StringTypesCompareEqual(t *testing.T) {
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	utf8 := subjectCert(t, pkix.RDNSequence{{{Type: cn, Value: "m1"}}})
	printable, err := asn1.Marshal(pkix.RDNSequence{{{Type: cn, Value: asn1.RawValue{Tag: asn1.TagPrintableString, Bytes: []byte("m1")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := DNOf(utf8), DNOf(&x509.Certificate{RawSubject: printable}); a != b || a != "CN=m1" {
		t.Fatalf("UTF8String %q and PrintableString %q differ", a, b)
	}
}

func FuzzCanonicalDN(f *testing.F) {
	for _, s := range []string{"CN=m1,O=Acme", "/O=Acme/CN=m1", "O = Acme, CN = m1", `CN=a\,b+OU=c`,
		"CN=#0c026d31", `O = "x, y"`, `CN=\#\ \00`, "1.2.3=#020101", "subject=CN = a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalDN(s)
		if err != nil {
			return
		}
		again, err := CanonicalDN(c)
		if err != nil || again != c {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, c, again, err)
		}
	})
}
