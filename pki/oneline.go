package pki

import (
	"encoding/asn1"
	"fmt"
	"strings"
)

// onelineNames are OpenSSL's short names (OBJ_nid2sn) of the attribute types a subject
// usually holds; X509_NAME_oneline writes any other type as its dotted OID.
var onelineNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
	"2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.12": "title", "2.5.4.17": "postalCode", "2.5.4.42": "GN", "2.5.4.43": "initials",
	"2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
	"1.2.840.113549.1.9.1": "emailAddress",
}

// Oneline renders a DER name (a certificate's RawSubject or RawIssuer) as OpenSSL's
// X509_NAME_oneline (OpenSSL 3) does: "/C=DE/O=Acme/CN=db1", most significant first, the
// attributes of a multi-valued RDN joined by '+', bytes outside printable ASCII as \xHH.
// MariaDB compares REQUIRE SUBJECT and REQUIRE ISSUER with exactly this string.
func Oneline(rawName []byte) (string, error) {
	var seq []rawATVSET
	rest, err := asn1.Unmarshal(rawName, &seq)
	if err != nil {
		return "", fmt.Errorf("decode name: %w", err)
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("decode name: %d bytes after it", len(rest))
	}
	var b strings.Builder
	for _, set := range seq {
		for i, a := range set {
			name, ok := onelineNames[a.Type.String()]
			if !ok {
				name = a.Type.String()
			}
			sep := "/"
			if i > 0 {
				sep = "+"
			}
			b.WriteString(sep + name + "=")
			writeOnelineValue(&b, a.Value)
		}
	}
	return b.String(), nil
}

// writeOnelineValue writes the value's bytes as X509_NAME_oneline does: each byte below ' '
// or above '~' as \xHH; a GeneralString whose length is a multiple of four and whose
// bytes are zero but every fourth is read as four-byte characters, their low bytes only.
func writeOnelineValue(b *strings.Builder, v asn1.RawValue) {
	data, wide := v.Bytes, v.Tag == 27 && len(v.Bytes)%4 == 0
	for i, c := range data {
		if wide && i%4 != 3 && c != 0 {
			wide = false
		}
	}
	for i, c := range data {
		switch {
		case wide && i%4 != 3:
		case c < ' ' || c > '~':
			fmt.Fprintf(b, `\x%02X`, c)
		default:
			b.WriteByte(c)
		}
	}
}
