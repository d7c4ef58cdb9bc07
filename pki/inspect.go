package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"math"
	"strings"
	"time"
)

// Info is what 'mirrorkv cert inspect' shows of a certificate; its JSON form is stable.
type Info struct {
	Subject     string    `json:"subject"` // DNOf: the string to authorise a member with
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"` // negative once expired
	IsCA        bool      `json:"is_ca"`
	Key         string    `json:"key"`
	Signature   string    `json:"signature"`
	DNS         []string  `json:"dns,omitempty"`
	IPs         []string  `json:"ips,omitempty"`
	URIs        []string  `json:"uris,omitempty"`
	Group       string    `json:"group,omitempty"`  // GroupOf, for a member certificate
	Access      string    `json:"access,omitempty"` // AccessOf, for a client certificate
	Emails      []string  `json:"emails,omitempty"`
	KeyUsage    []string  `json:"key_usage,omitempty"`
	ExtKeyUsage []string  `json:"ext_key_usage,omitempty"`
	Fingerprint string    `json:"sha256_fingerprint"`
}

// Inspect describes cert as of now.
func Inspect(cert *x509.Certificate, now time.Time) Info {
	in := Info{
		Subject:     DNOf(cert),
		Issuer:      dnFromRaw(cert.RawIssuer),
		Serial:      serialHex(cert.SerialNumber),
		NotBefore:   cert.NotBefore.UTC(),
		NotAfter:    cert.NotAfter.UTC(),
		DaysLeft:    int(math.Round(cert.NotAfter.Sub(now).Hours() / 24)),
		IsCA:        cert.IsCA,
		Key:         keyDescription(cert.PublicKey),
		Signature:   cert.SignatureAlgorithm.String(),
		DNS:         cert.DNSNames,
		Emails:      cert.EmailAddresses,
		KeyUsage:    keyUsageNames(cert.KeyUsage),
		ExtKeyUsage: extKeyUsageNames(cert),
		Fingerprint: Fingerprint(cert),
	}
	for _, ip := range cert.IPAddresses {
		in.IPs = append(in.IPs, ip.String())
	}
	for _, u := range cert.URIs {
		in.URIs = append(in.URIs, u.String())
	}
	if g, err := GroupOf(cert); err == nil {
		in.Group = g
	}
	if a, err := AccessOf(cert); err == nil {
		in.Access = string(a)
	}
	return in
}

// Fingerprint is the SHA-256 of the certificate, in the colon-separated upper-case hex that
// 'openssl x509 -fingerprint -sha256' prints.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// keyUsageNames uses RFC 5280's names, which openssl's output paraphrases.
func keyUsageNames(ku x509.KeyUsage) []string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func extKeyUsageNames(cert *x509.Certificate) []string {
	var out []string
	for _, u := range cert.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "clientAuth")
		case x509.ExtKeyUsageCodeSigning:
			out = append(out, "codeSigning")
		case x509.ExtKeyUsageEmailProtection:
			out = append(out, "emailProtection")
		case x509.ExtKeyUsageTimeStamping:
			out = append(out, "timeStamping")
		case x509.ExtKeyUsageOCSPSigning:
			out = append(out, "OCSPSigning")
		default:
			out = append(out, "other")
		}
	}
	for _, oid := range cert.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return out
}
