package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
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

// RequestInfo is what 'mirrorkv ca sign' shows of a CSR before signing it: what the CA
// copies from it, and what it leaves out.
type RequestInfo struct {
	Subject string   // DN, as DNOf prints it
	DNS     []string // DNS SANs, copied into the certificate
	IPs     []string // IP SANs, copied into the certificate
	Key     string   // "ECDSA P-256", "Ed25519", "RSA 3072"
	// Asks is the group or access the request's URIs name (a renewal carries the old
	// certificate's); empty when it names none. Sign refuses to grant another.
	Asks    string
	Ignored []string // SANs the CA does not copy: other URIs and e-mail addresses
}

// InspectRequest describes csr.
func InspectRequest(csr *x509.CertificateRequest) RequestInfo {
	in := RequestInfo{Subject: dnFromRaw(csr.RawSubject), DNS: csr.DNSNames, Key: keyDescription(csr.PublicKey)}
	for _, ip := range csr.IPAddresses {
		in.IPs = append(in.IPs, ip.String())
	}
	grant, asks, err := GrantOf(&x509.Certificate{URIs: csr.URIs, RawSubject: csr.RawSubject})
	switch {
	case err != nil:
		in.Asks = "an unreadable grant: " + err.Error()
	case asks:
		in.Asks = grant.String()
	}
	for _, u := range csr.URIs {
		if !hasURN([]*url.URL{u}, groupNSS) && !hasURN([]*url.URL{u}, accessNSS) && !hasURN([]*url.URL{u}, legacyAccessNSS) {
			in.Ignored = append(in.Ignored, "URI "+u.String())
		}
	}
	for _, e := range csr.EmailAddresses {
		in.Ignored = append(in.Ignored, "email "+e)
	}
	return in
}
