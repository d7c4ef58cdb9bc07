package mtls

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/mirrorkv/mirrorkv/pki"
)

// maxPEMFile bounds what a credential file may hold; anything larger is not a credential.
const maxPEMFile = 4 << 20

// ParseCertificates decodes every certificate in data, which is either PEM (any number of
// CERTIFICATE blocks; other blocks are ignored) or one DER certificate. It is pki's parser
// with a bound on the size, since a peer or a mistyped path may hand in anything.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("parse certificates: %d bytes is too large for a certificate file", len(data))
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("parse certificates: %w", err)
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
