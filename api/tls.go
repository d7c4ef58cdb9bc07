package api

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Trust is this member's own TLS material, which the /v1/tls routes read and replace. It is
// per member, never replicated: an operator rotating a CA pushes to each member directly.
// *node.Node provides it.
type Trust interface {
	TLSInfo() wire.TLSInfo
	// SetTrust makes ca (PEM CA certificates) the port's bundle and crl its CRLs, once the
	// member has checked that it keeps working with them and that a CA it trusts now
	// endorses each CA added (endorsements, PEM cross-certificates).
	SetTrust(port wire.TLSPort, ca, crl, endorsements []byte) error
	// NewKeyRequest makes a new key, kept on the member as pending, and returns a CSR for
	// it with the subject and SANs of the certificate the member serves.
	NewKeyRequest() (csr []byte, err error)
	// InstallCert installs cert (PEM, leaf first) with the pending key, if they match.
	InstallCert(cert []byte) error
}

// Bounds of the /v1/tls bodies: a bundle holds a few CAs and their CRLs; a CRL of many
// revocations is the largest part.
const (
	maxTrustBodyBytes = 4 << 20
	maxBundleCAs      = 16
	maxChainCerts     = 4
)

func (s *Server) trustRoutes() {
	if s.cfg.Trust == nil {
		return
	}
	s.route("GET /v1/tls", "tls", levelAdmin, s.tlsInfo)
	s.route("POST /v1/tls/trust", "tls-trust", levelAdmin, s.setTrust)
	s.route("POST /v1/tls/csr", "tls-csr", levelAdmin, s.keyRequest)
	s.route("POST /v1/tls/cert", "tls-cert", levelAdmin, s.installCert)
}

func (s *Server) tlsInfo(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	info := s.cfg.Trust.TLSInfo()
	s.writeJSON(w, http.StatusOK, &info)
	return nil
}

func (s *Server) setTrust(w http.ResponseWriter, r *http.Request) error {
	if err := adminPost(r); err != nil {
		return err
	}
	var in wire.TrustPush
	if err := decodeStrict(limitBody(w, r, maxTrustBodyBytes), &in); err != nil {
		return err
	}
	ca, crl, err := checkTrustPush(in)
	if err != nil {
		return err
	}
	endorsements, err := checkEndorsements(in.Endorsements)
	if err != nil {
		return err
	}
	if err := s.cfg.Trust.SetTrust(in.Port, ca, crl, endorsements); err != nil {
		return trustError(err)
	}
	info := s.cfg.Trust.TLSInfo()
	s.writeJSON(w, http.StatusOK, &info)
	return nil
}

func (s *Server) keyRequest(w http.ResponseWriter, r *http.Request) error {
	if err := adminPost(r); err != nil {
		return err
	}
	csr, err := s.cfg.Trust.NewKeyRequest()
	if err != nil {
		return trustError(err)
	}
	s.writeJSON(w, http.StatusOK, &wire.KeyRequest{CSR: string(csr)})
	return nil
}

func (s *Server) installCert(w http.ResponseWriter, r *http.Request) error {
	if err := adminPost(r); err != nil {
		return err
	}
	var in wire.CertPush
	if err := decodeStrict(limitBody(w, r, maxTrustBodyBytes), &in); err != nil {
		return err
	}
	cert, err := checkCertPush(in)
	if err != nil {
		return err
	}
	if err := s.cfg.Trust.InstallCert(cert); err != nil {
		return trustError(err)
	}
	info := s.cfg.Trust.TLSInfo()
	s.writeJSON(w, http.StatusOK, &info)
	return nil
}

func adminPost(r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	return requireJSON(r)
}

// decodeStrict reads one JSON object with no unknown fields into v.
func decodeStrict(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return badPush("decode the body: %s", err.Error())
	}
	if dec.More() {
		return badPush("the body holds more than one JSON value")
	}
	return nil
}

// checkTrustPush checks that a push names a port and carries only CA certificates and CRLs,
// all well-formed. Whether the member can live with them (its own certificate still chains,
// each CRL is signed by a CA of the bundle) is the member's own check, in SetTrust.
func checkTrustPush(in wire.TrustPush) (ca, crl []byte, err error) {
	if in.Port != wire.TLSPortMember && in.Port != wire.TLSPortClient {
		return nil, nil, badPush("port %q: want %q or %q", in.Port, wire.TLSPortMember, wire.TLSPortClient)
	}
	cas, err := pemBlocks([]byte(in.CA), "CERTIFICATE", maxBundleCAs)
	if err != nil {
		return nil, nil, badPush("ca: %s", err.Error())
	}
	for i, b := range cas {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, badPush("ca: certificate %d: %s", i+1, err.Error())
		}
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, nil, badPush("ca: certificate %d (%s) is not a CA certificate; a trust bundle holds CA certificates only", i+1, c.Subject)
		}
	}
	if in.CRL == "" {
		return []byte(in.CA), nil, nil
	}
	crls, err := pemBlocks([]byte(in.CRL), "X509 CRL", maxBundleCAs)
	if err != nil {
		return nil, nil, badPush("crl: %s", err.Error())
	}
	for i, b := range crls {
		if _, err := x509.ParseRevocationList(b.Bytes); err != nil {
			return nil, nil, badPush("crl: CRL %d: %s", i+1, err.Error())
		}
	}
	return []byte(in.CA), []byte(in.CRL), nil
}

// checkEndorsements checks that the endorsements of a trust push are well-formed CA
// certificates; whether they endorse what the push adds is the member's own check.
func checkEndorsements(in string) ([]byte, error) {
	if in == "" {
		return nil, nil
	}
	blocks, err := pemBlocks([]byte(in), "CERTIFICATE", 2*maxBundleCAs)
	if err != nil {
		return nil, badPush("endorsements: %s", err.Error())
	}
	for i, b := range blocks {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, badPush("endorsements: certificate %d: %s", i+1, err.Error())
		}
		if !c.IsCA {
			return nil, badPush("endorsements: certificate %d (%s) is not a CA certificate", i+1, c.Subject)
		}
	}
	return []byte(in), nil
}

// checkCertPush checks that a certificate push is a leaf, optionally followed by
// intermediates, all well-formed.
func checkCertPush(in wire.CertPush) ([]byte, error) {
	blocks, err := pemBlocks([]byte(in.Cert), "CERTIFICATE", maxChainCerts)
	if err != nil {
		return nil, badPush("cert: %s", err.Error())
	}
	for i, b := range blocks {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, badPush("cert: certificate %d: %s", i+1, err.Error())
		}
		if i == 0 && c.IsCA {
			return nil, badPush("cert: the first certificate (%s) is a CA; send the member's certificate first", c.Subject)
		}
	}
	return []byte(in.Cert), nil
}

// pemBlocks decodes data as PEM blocks of type want only, at most max of them, with
// nothing but white space around them.
func pemBlocks(data []byte, want string, max int) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		b, next := pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("after %d PEM block(s), %d bytes are not PEM", len(blocks), len(rest))
		}
		if b.Type != want {
			return nil, fmt.Errorf("PEM block %d is %q, want %q", len(blocks)+1, b.Type, want)
		}
		if len(b.Headers) > 0 {
			return nil, fmt.Errorf("PEM block %d has headers; encrypted or annotated blocks are not taken", len(blocks)+1)
		}
		if blocks = append(blocks, b); len(blocks) > max {
			return nil, fmt.Errorf("more than %d %s blocks", max, want)
		}
		rest = bytes.TrimSpace(next)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("no %s block", want)
	}
	return blocks, nil
}

func badPush(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: reason.BadTLSPush, Msg: fmt.Sprintf(format, a...)}
}

// trustError renders a member's refusal of pushed material: 409, since the request was
// well-formed but the member's state (its pending key, its certificate) does not allow it.
func trustError(err error) error {
	switch code := reason.Of(err, reason.OK); code {
	case reason.NoPendingKey, reason.PendingKeyMismatch, reason.TrustRefused:
		return &Error{Status: http.StatusConflict, Reason: code, Msg: err.Error(), Err: err}
	case reason.CANotEndorsed:
		return &Error{Status: http.StatusForbidden, Reason: code, Msg: err.Error(), Err: err}
	}
	return err
}
