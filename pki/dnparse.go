package pki

import (
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// attrType is one attribute type that has a keyword.
type attrType struct {
	oid     string
	name    string   // canonical keyword, as DNOf writes it
	aliases []string // other spellings accepted on input (case-insensitive)
}

// attrTypes lists the keywords of RFC 4514 and the other ones openssl prints.
func attrTypes() []attrType {
	return []attrType{
		{"2.5.4.3", "CN", []string{"commonName"}},
		{"2.5.4.4", "SN", []string{"surname"}},
		{"2.5.4.5", "serialNumber", nil},
		{"2.5.4.6", "C", []string{"countryName"}},
		{"2.5.4.7", "L", []string{"localityName"}},
		{"2.5.4.8", "ST", []string{"S", "stateOrProvinceName"}},
		{"2.5.4.9", "STREET", []string{"streetAddress"}},
		{"2.5.4.10", "O", []string{"organizationName"}},
		{"2.5.4.11", "OU", []string{"organizationalUnitName"}},
		{"2.5.4.12", "title", nil},
		{"2.5.4.17", "postalCode", nil},
		{"2.5.4.42", "GN", []string{"givenName"}},
		{"0.9.2342.19200300.100.1.25", "DC", []string{"domainComponent"}},
		{"0.9.2342.19200300.100.1.1", "UID", []string{"userId"}},
		{"1.2.840.113549.1.9.1", "emailAddress", []string{"E", "email"}},
	}
}

// typeName returns the keyword of oid, or its dotted form.
func typeName(oid asn1.ObjectIdentifier) string {
	s := oid.String()
	for _, t := range attrTypes() {
		if t.oid == s {
			return t.name
		}
	}
	return s
}

// parseType turns a typed attribute type (keyword or dotted OID) into its canonical form.
func parseType(s string) (string, error) {
	s = strings.TrimSpace(s)
	for _, t := range attrTypes() {
		if strings.EqualFold(s, t.name) || strings.EqualFold(s, t.oid) {
			return t.name, nil
		}
		for _, a := range t.aliases {
			if strings.EqualFold(s, a) {
				return t.name, nil
			}
		}
	}
	oid, err := parseOID(strings.TrimPrefix(strings.TrimPrefix(s, "OID."), "oid."))
	if err != nil {
		return "", fmt.Errorf("attribute type %q: %w", s, ErrBadDN)
	}
	return typeName(oid), nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, ErrBadDN
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 31)
		if err != nil || p == "" || p[0] == '+' {
			return nil, ErrBadDN
		}
		oid[i] = int(n)
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, ErrBadDN
	}
	return oid, nil
}

// parseDN splits s into RDNs at unescaped sep and into attributes at unescaped '+'. It
// returns them in the order written.
func parseDN(s string, sep byte) ([]dnRDN, error) {
	var rdns []dnRDN
	var rdn dnRDN
	for {
		a, rest, end, err := parseATV(s, sep)
		if err != nil {
			return nil, err
		}
		rdn = append(rdn, a)
		if end != '+' {
			rdns = append(rdns, rdn)
			rdn = nil
		}
		if end == 0 {
			return rdns, nil
		}
		s = rest
	}
}

// parseATV reads "type=value" up to an unescaped sep or '+' (returned as end; 0 at the end).
func parseATV(s string, sep byte) (a dnATV, rest string, end byte, err error) {
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return a, "", 0, fmt.Errorf("%q has no '=': %w", s, ErrBadDN)
	}
	if a.typ, err = parseType(s[:eq]); err != nil {
		return a, "", 0, err
	}
	raw, rest, end, err := scanValue(s[eq+1:], sep)
	if err != nil {
		return a, "", 0, err
	}
	switch {
	case strings.HasPrefix(raw, "#"):
		a, err = hexATV(a.typ, raw)
	case len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !strings.HasSuffix(raw, `\"`):
		a.val, err = unescapeValue(raw[1 : len(raw)-1]) // openssl quotes values with specials
	default:
		a.val, err = unescapeValue(raw)
	}
	return a, rest, end, err
}

// scanValue returns the value text (escapes kept, surrounding unescaped spaces dropped) up
// to the next unescaped separator.
func scanValue(s string, sep byte) (raw, rest string, end byte, err error) {
	i, quoted := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			quoted = !quoted
		}
		if c == '\\' {
			if i+1 == len(s) {
				return "", "", 0, fmt.Errorf("value ends with '\\': %w", ErrBadDN)
			}
			i++
			continue
		}
		if !quoted && (c == sep || c == '+') {
			end = c
			break
		}
	}
	raw, rest = trimUnescaped(s[:i]), ""
	if end != 0 {
		rest = s[i+1:]
	}
	return raw, rest, end, nil
}

// trimUnescaped drops leading white space and trailing white space not escaped by a
// backslash.
func trimUnescaped(s string) string {
	const white = " \t\r\n"
	s = strings.TrimLeft(s, white)
	for s != "" && strings.IndexByte(white, s[len(s)-1]) >= 0 && !escaped(s, len(s)-1) {
		s = s[:len(s)-1]
	}
	return s
}

// escaped reports whether s[i] follows an odd number of backslashes.
func escaped(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// unescapeValue resolves \c and \XX escapes.
func unescapeValue(raw string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			b.WriteByte(raw[i])
			continue
		}
		if i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
			v, _ := strconv.ParseUint(raw[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		i++ // scanValue guarantees a character after the backslash
		b.WriteByte(raw[i])
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// hexATV decodes a "#hex" value (the BER of the value): a string reads as text, so that it
// compares equal to the same name typed in clear.
func hexATV(typ, raw string) (dnATV, error) {
	der, err := hex.DecodeString(raw[1:])
	if err != nil {
		return dnATV{}, fmt.Errorf("hex value %q: %w", raw, ErrBadDN)
	}
	var rv asn1.RawValue
	if r, err := asn1.Unmarshal(der, &rv); err != nil || len(r) > 0 {
		return dnATV{}, fmt.Errorf("hex value %q is not one DER value: %w", raw, ErrBadDN)
	}
	return atvOf(typ, rv), nil
}
