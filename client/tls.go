package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
)

// TLSOption adds a check to the configuration LoadTLS builds.
type TLSOption func(*tlsOptions)

type tlsOptions struct {
	crlFile string
	now     func() time.Time
}

// WithCRL makes every connection check the member's certificate chain against the CRL in
// crlFile (PEM or DER, as `mirrorkv ca crl` writes it), which must be signed by a CA of the
// CA file: a revoked member certificate is refused even though the CA signed it. A CRL past
// its next update is refused as well, so that an old list cannot hide a newer revocation.
// An empty crlFile adds nothing.
func WithCRL(crlFile string) TLSOption { return func(o *tlsOptions) { o.crlFile = crlFile } }

// LoadTLS builds a client TLS configuration from PEM files: caFile holds the CA that signed
// the members' certificates, certFile and keyFile the client's certificate and key. The
// certificate is always sent, whatever CAs the server names, so that a refusal comes back
// with the server's reason rather than as a missing certificate.
func LoadTLS(caFile, certFile, keyFile string, opts ...TLSOption) (*tls.Config, error) {
	o := tlsOptions{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, errors.New("load client TLS: need a CA file, a certificate and a key (--cacert, --cert, --key or MIRRORKV_CACERT, MIRRORKV_CERT, MIRRORKV_KEY)")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("load CA file %s: no PEM certificate in it; pass the CA certificate that signed the members' certificates", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate %s and key %s: %w; check that the key belongs to the certificate (mirrorkv cert lint)", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
	}
	if o.crlFile != "" {
		check, err := loadCRLCheck(o.crlFile, caPEM, o.now)
		if err != nil {
			return nil, err
		}
		cfg.VerifyConnection = check
	}
	return cfg, nil
}

// loadCRLCheck reads the CRL once and returns the check each connection runs on the member's
// verified chain.
func loadCRLCheck(crlFile string, caPEM []byte, now func() time.Time) (func(tls.ConnectionState) error, error) {
	data, err := os.ReadFile(crlFile)
	if err != nil {
		return nil, fmt.Errorf("read CRL file %s: %w", crlFile, err)
	}
	rl, err := pki.ParseCRL(data)
	if err != nil {
		return nil, fmt.Errorf("load CRL file %s: %w", crlFile, err)
	}
	cas, err := pki.ParseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA certificates to check the CRL %s: %w", crlFile, err)
	}
	if err := pki.CheckCRLSignature(rl, cas); err != nil {
		return nil, fmt.Errorf("CRL file %s is not signed by a CA of the CA file; use the crl.pem of the members' CA: %w", crlFile, err)
	}
	revoked := make(map[string]bool, len(rl.RevokedCertificateEntries))
	for _, e := range rl.RevokedCertificateEntries {
		revoked[e.SerialNumber.String()] = true
	}
	return func(cs tls.ConnectionState) error {
		if !rl.NextUpdate.IsZero() && now().After(rl.NextUpdate) {
			return fmt.Errorf("CRL file %s is past its next update (%s): get a fresh one (mirrorkv ca crl) before trusting members with it", crlFile, rl.NextUpdate.UTC().Format(time.RFC3339))
		}
		for _, chain := range cs.VerifiedChains {
			for _, c := range chain {
				if bytes.Equal(c.RawIssuer, rl.RawIssuer) && revoked[c.SerialNumber.String()] {
					return fmt.Errorf("member certificate %q (serial %s) is revoked in %s: %w", pki.DNOf(c), c.SerialNumber.Text(16), crlFile, ErrRevoked)
				}
			}
		}
		return nil
	}, nil
}
