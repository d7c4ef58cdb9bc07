package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
)

// RequestOptions describes a key and CSR made on a member with 'mirrorkv cert request'.
type RequestOptions struct {
	Name    string
	DNS     []string
	IPs     []net.IP
	KeyType KeyType
}

// Request is a new key and the CSR that asks a CA to certify it.
type Request struct {
	Name   string
	CSRPEM []byte
	KeyPEM []byte
}

// NewRequest makes a key and a CSR carrying only the subject CN and the SANs: the CA decides
// every other extension when it signs.
func NewRequest(opts RequestOptions) (*Request, error) {
	if err := CheckName(opts.Name); err != nil {
		return nil, err
	}
	key, err := GenerateKey(opts.KeyType)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: opts.Name}, DNSNames: opts.DNS, IPAddresses: opts.IPs}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("make certificate request: %w", err)
	}
	keyPEM, err := MarshalPrivateKey(key, nil)
	if err != nil {
		return nil, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return &Request{Name: opts.Name, CSRPEM: csrPEM, KeyPEM: keyPEM}, nil
}

// WriteRequest writes r to outDir/NAME.csr and outDir/NAME.key (0600), both or neither.
func WriteRequest(outDir string, r *Request) (csrPath, keyPath string, err error) {
	csrPath = filepath.Join(outDir, r.Name+".csr")
	keyPath = filepath.Join(outDir, r.Name+".key")
	err = writeFilesAtomic([]fileSpec{{csrPath, r.CSRPEM, modePublic}, {keyPath, r.KeyPEM, modeSecret}})
	if err != nil {
		return "", "", err
	}
	return csrPath, keyPath, nil
}
