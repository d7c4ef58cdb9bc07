package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// LoadTLS builds a client TLS configuration from PEM files: caFile holds the CA that signed
// the members' certificates, certFile and keyFile the client's certificate and key. The
// certificate is always sent, whatever CAs the server names, so that a refusal comes back
// with the server's reason rather than as a missing certificate.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
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
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
	}, nil
}
