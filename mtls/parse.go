package mtls

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// maxPEMFile bounds what a credential file may hold; anything larger is not a credential.
const maxPEMFile = 4 << 20

// ParseCertificates decodes every certificate in data, which is either PEM (any number of
// CERTIFICATE blocks; other blocks are ignored) or one DER certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("parse certificates: %d bytes is too large for a certificate file", len(data))
	}
	if !looksPEM(data) {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: neither PEM nor DER: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	for rest := data; ; {
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
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("parse certificates: no CERTIFICATE block found")
	}
	return certs, nil
}

// ParseCRLs decodes every certificate revocation list in data: PEM (X509 CRL blocks, one per
// CA of a bundle) or one DER CRL.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("parse CRL: %d bytes is too large for a CRL file", len(data))
	}
	if !looksPEM(data) {
		rl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, fmt.Errorf("parse CRL: neither PEM nor DER: %w", err)
		}
		return []*x509.RevocationList{rl}, nil
	}
	var crls []*x509.RevocationList
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "X509 CRL" {
			continue
		}
		rl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CRL %d: %w", len(crls)+1, err)
		}
		crls = append(crls, rl)
	}
	if len(crls) == 0 {
		return nil, errors.New("parse CRL: no X509 CRL block found")
	}
	return crls, nil
}

func looksPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN "))
}
