package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
)

// ParseCertificates reads every certificate in a PEM bundle, in file order, or the single
// certificate of a DER file. Blocks of other types (keys, parameters) are skipped.
func ParseCertificates(pemOrDER []byte) ([]*x509.Certificate, error) {
	if !isPEM(pemOrDER) {
		c, err := x509.ParseCertificate(pemOrDER)
		if err != nil {
			return nil, fmt.Errorf("parse DER certificate: %w", ErrNoCertificate)
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	rest := pemOrDER
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of the bundle: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	return certs, nil
}

// ParseCSR reads a PEM or DER certificate request and checks its self-signature.
func ParseCSR(pemOrDER []byte) (*x509.CertificateRequest, error) {
	der := pemOrDER
	if isPEM(pemOrDER) {
		if der = firstPEM(pemOrDER, "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"); der == nil {
			return nil, ErrNoCSR
		}
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", ErrNoCSR)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("check certificate request signature (make it again with 'mirrorkv cert request'): %w", err)
	}
	return csr, nil
}

// ParseCRL reads a PEM or DER certificate revocation list. Members accept either form.
func ParseCRL(pemOrDER []byte) (*x509.RevocationList, error) {
	der := pemOrDER
	if isPEM(pemOrDER) {
		if der = firstPEM(pemOrDER, "X509 CRL"); der == nil {
			return nil, ErrNoCRL
		}
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", ErrNoCRL)
	}
	return rl, nil
}

// firstPEM returns the bytes of the first PEM block of one of types, or nil.
func firstPEM(data []byte, types ...string) []byte {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil
		}
		if slices.Contains(types, b.Type) {
			return b.Bytes
		}
	}
}

// isPEM reports whether data looks like PEM text rather than DER.
func isPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN "))
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
