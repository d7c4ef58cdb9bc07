package pki

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A distinguished name is held as RDNs in ASN.1 order (most significant first, as openssl
// prints it); each RDN is a set of attribute type and value pairs.
type (
	dnATV struct {
		typ string // canonical keyword (CN, O, ...) or dotted OID
		val string // decoded value, or "#hex" of a DER value that is not a string
		// isHex marks val as "#hex"; a string value may begin with '#' too.
		isHex bool
	}
	dnRDN []dnATV
)

// Types for decoding a raw subject: a SEQUENCE OF SET OF AttributeTypeAndValue. Values stay
// raw so that the string type does not change the rendering. asn1 treats a slice type whose
// name ends in SET as a SET OF.
type (
	rawATV struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	rawATVSET []rawATV
)

// DNOf renders cert's subject as an RFC 4514 string in mirrorkv's canonical form: least
// significant RDN first (CN=m1,O=Acme), standard keywords in upper case, values unchanged
// except for RFC 4514 escaping, the members of a multi-valued RDN sorted. Two certificates
// have the same DNOf exactly when their subjects name the same identity, whatever string
// types the issuing tool chose; operators paste this string to authorise a member.
func DNOf(cert *x509.Certificate) string {
	var seq []rawATVSET
	rest, err := asn1.Unmarshal(cert.RawSubject, &seq)
	if err != nil || len(rest) > 0 {
		return cert.Subject.String() // x509 parsed it, so this is unreachable in practice
	}
	rdns := make([]dnRDN, len(seq))
	for i, set := range seq {
		for _, a := range set {
			rdns[i] = append(rdns[i], atvOf(typeName(a.Type), a.Value))
		}
	}
	return renderDN(rdns)
}

// CanonicalDN turns a DN as an operator typed or pasted it into the string DNOf gives for a
// certificate with that subject. It accepts:
//   - RFC 4514, least significant first: CN=m1,O=Acme (spaces after separators allowed);
//   - openssl's default output, most significant first: O = Acme, CN = m1 (recognised by the
//     spaces around the first '='; a leading "subject=" or "issuer=" is dropped);
//   - openssl's slash form, most significant first: /O=Acme/CN=m1.
func CanonicalDN(s string) (string, error) {
	s = trimUnescaped(s) // pasted output often ends in a newline
	for _, p := range []string{"subject=", "issuer="} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = strings.TrimLeft(s[len(p):], " ")
		}
	}
	if s == "" {
		return "", ErrEmptyDN
	}
	var rdns []dnRDN
	var err error
	switch {
	case s[0] == '/':
		rdns, err = parseDN(s[1:], '/')
	case isOpensslOneline(s):
		rdns, err = parseDN(s, ',')
	default:
		rdns, err = parseDN(s, ',')
		slices.Reverse(rdns) // RFC 4514 lists the least significant RDN first
	}
	if err != nil {
		return "", err
	}
	return renderDN(rdns), nil
}

// isOpensslOneline reports whether s starts like "O = Acme": a type, a space, then '='.
func isOpensslOneline(s string) bool {
	i := strings.IndexByte(s, '=')
	return i > 1 && s[i-1] == ' ' && !strings.ContainsAny(s[:i], ",+\\")
}

// renderDN writes rdns (ASN.1 order) as RFC 4514, which lists them in reverse.
func renderDN(rdns []dnRDN) string {
	parts := make([]string, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		atvs := make([]string, 0, len(rdns[i]))
		for _, a := range rdns[i] {
			v := a.val
			if !a.isHex {
				v = escapeValue(v)
			}
			atvs = append(atvs, a.typ+"="+v)
		}
		slices.Sort(atvs)
		parts = append(parts, strings.Join(atvs, "+"))
	}
	return strings.Join(parts, ",")
}

// atvOf decodes a DER attribute value: strings as text, anything else as "#hex".
func atvOf(typ string, rv asn1.RawValue) dnATV {
	if s, ok := decodeString(rv); ok {
		return dnATV{typ: typ, val: s}
	}
	return dnATV{typ: typ, val: "#" + hex.EncodeToString(rv.FullBytes), isHex: true}
}

// decodeString decodes the ASN.1 string types found in names.
func decodeString(rv asn1.RawValue) (string, bool) {
	if rv.Class != asn1.ClassUniversal || rv.IsCompound {
		return "", false
	}
	switch rv.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagNumericString:
		s := string(rv.Bytes)
		return s, utf8.ValidString(s)
	case asn1.TagT61String: // in practice Latin-1
		r := make([]rune, len(rv.Bytes))
		for i, b := range rv.Bytes {
			r[i] = rune(b)
		}
		return string(r), true
	case asn1.TagBMPString:
		if len(rv.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(rv.Bytes)/2)
		for i := range u {
			u[i] = uint16(rv.Bytes[2*i])<<8 | uint16(rv.Bytes[2*i+1])
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

// escapeValue applies RFC 4514 section 2.4 escaping; bytes that are not printable UTF-8
// become \XX so that the result is plain text and reads back the same.
func escapeValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case (r == utf8.RuneError && size == 1) || r < 0x20 || r == 0x7f:
			b.WriteString(`\` + hex.EncodeToString([]byte{v[i]}))
		case strings.ContainsRune(`\"+,;<>=`, r),
			(i == 0 && (r == ' ' || r == '#')),
			(i+size == len(v) && r == ' '):
			b.WriteString(`\`)
			b.WriteRune(r)
		default:
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	return b.String()
}
