package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// maxCRLBodyBytes bounds a POST /v1/crl body: a PEM CRL listing tens of thousands of
// certificates, with room for the JSON around it.
const maxCRLBodyBytes = 2 << 20

// CRLPusher is what the push route needs of the group; the node fills it from the cluster
// and its two TLS sources.
type CRLPusher interface {
	// PushCRL checks the CRL der on the primary against the CA bundles of both ports and
	// commits it for the port whose CA signed it. Elsewhere it fails with reason.NotPrimary.
	PushCRL(ctx context.Context, der []byte) (port string, err error)
}

// pushCRL is POST /v1/crl: an admin hands the group a CRL, which every member then puts in
// force on the port whose CA signed it.
func (s *Server) pushCRL(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	pusher, ok := s.grp.(CRLPusher)
	if !ok {
		return &Error{Status: http.StatusNotImplemented, Msg: "this member cannot take CRLs", Fix: "copy crl.pem to every member instead"}
	}
	der, err := DecodeCRLPush(limitBody(w, r, maxCRLBodyBytes))
	if err != nil {
		return err
	}
	rl, _ := x509.ParseRevocationList(der) // DecodeCRLPush parsed it already
	port, err := pusher.PushCRL(r.Context(), der)
	if err != nil {
		return crlError(err)
	}
	s.writeJSON(w, http.StatusOK, &wire.CRLPushed{Port: port, Issuer: rl.Issuer.String(),
		Number: pki.CRLNumber(rl).String(), Revoked: len(rl.RevokedCertificateEntries)})
	return nil
}

// DecodeCRLPush reads a POST /v1/crl body: JSON {"crl": PEM} holding exactly one X509 CRL
// block that parses as a CRL. It returns the CRL's DER. The body comes from the network,
// so every refusal is a 400 that says what to send.
func DecodeCRLPush(body io.Reader) ([]byte, error) {
	var p wire.CRLPush
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, err
		}
		return nil, crlBadRequest("decode the body: %s", err.Error())
	}
	if dec.More() {
		return nil, crlBadRequest("the body holds more than one object; push one CRL at a time")
	}
	block, rest := pem.Decode([]byte(p.CRL))
	if block == nil || block.Type != "X509 CRL" {
		return nil, crlBadRequest("crl holds no PEM X509 CRL block")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, crlBadRequest("crl holds more than one PEM block; push one CRL at a time")
	}
	if _, err := x509.ParseRevocationList(block.Bytes); err != nil {
		return nil, crlBadRequest("parse the CRL: %s", err.Error())
	}
	return block.Bytes, nil
}

func crlBadRequest(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: reason.CRLInvalid, Msg: fmt.Sprintf(format, a...),
		Fix: `send {"crl":"-----BEGIN X509 CRL-----..."} with the crl.pem written by mirrorkv ca crl (mirrorkv ca crl --push does)`}
}

// crlError turns a refused CRL into a client error with its reason: 422 for a CRL no CA of
// the group signed or that does not parse, 409 for one older than the CRL in force. Other
// failures (not the primary, no quorum) go to the renderer as they are.
func crlError(err error) error {
	switch code := reason.Of(err, reason.OK); code {
	case reason.CRLUnknownSigner, reason.CRLInvalid:
		return &Error{Status: http.StatusUnprocessableEntity, Reason: code, Msg: err.Error(), Err: err}
	case reason.CRLOlder:
		return &Error{Status: http.StatusConflict, Reason: code, Msg: err.Error(), Err: err}
	}
	return err
}
