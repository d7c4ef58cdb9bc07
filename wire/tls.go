package wire

import "time"

// TLSPort names the port whose trust a push changes: the member port trusts the
// replication CA, the client port the client CA.
type TLSPort string

// TLS ports.
const (
	TLSPortMember TLSPort = "member"
	TLSPortClient TLSPort = "client"
)

// TLSInfo is the body of GET /v1/tls: the trust material one member has in force, read
// from its TLS sources rather than from its files, so that a refused reload shows.
type TLSInfo struct {
	Member string `json:"member"`
	DN     string `json:"dn"`
	// Chain is what the member serves on both ports, leaf first; ChainPEM the same in PEM.
	Chain    []CertInfo `json:"chain"`
	ChainPEM string     `json:"chainPEM"`
	// MemberCAs and ClientCAs are the CA bundles in force on the member and client ports.
	MemberCAs []CertInfo `json:"memberCAs"`
	ClientCAs []CertInfo `json:"clientCAs"`
	// PendingKey is true while a key made for POST /v1/tls/csr waits for its certificate.
	PendingKey bool `json:"pendingKey"`
	// Pushed lists the files of the member's DIR/tls that were pushed to it and take
	// precedence over the files its flags name.
	Pushed []string `json:"pushed"`
}

// CertInfo describes one certificate.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	Serial   string    `json:"serial"`
	SHA256   string    `json:"sha256"` // of the DER, lowercase hex
	NotAfter time.Time `json:"notAfter"`
	IsCA     bool      `json:"isCA"`
}

// TrustPush is the body of POST /v1/tls/trust: the CA bundle a port trusts from now on and
// the CRLs of those CAs, both PEM.
type TrustPush struct {
	Port TLSPort `json:"port"`
	CA   string  `json:"ca"`
	CRL  string  `json:"crl,omitempty"`
	// Endorsements are cross-certificates (PEM) by which a CA the member trusts now
	// certifies each CA the push adds (pki.CA.Endorse): without one, a CA is not added.
	Endorsements string `json:"endorsements,omitempty"`
}

// KeyRequest is the body of the answer to POST /v1/tls/csr: a CSR for a key the member made
// and keeps, with the subject and SANs of the certificate it serves.
type KeyRequest struct {
	CSR string `json:"csr"`
}

// CertPush is the body of POST /v1/tls/cert: the certificate (PEM, leaf first, then any
// intermediates) for the member's pending key.
type CertPush struct {
	Cert string `json:"cert"`
}
