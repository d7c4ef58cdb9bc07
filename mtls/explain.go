package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// Diagnosis is a handshake failure in plain words: the reason code, what happened, and what
// to do about it.
type Diagnosis struct {
	Code    reason.Code
	Summary string
	Fix     string
}

// Explain turns any error from this package, crypto/tls or crypto/x509 into a Diagnosis.
// The side that detects a fault holds the precise cause; the other side only sees the TLS
// alert, which Explain maps as well as it can.
func Explain(err error) Diagnosis {
	if err == nil {
		return Diagnosis{Code: reason.OK, Summary: reason.OK.Text()}
	}
	code := classify(err)
	return Diagnosis{Code: code, Summary: err.Error(), Fix: code.Fix()}
}

func codeOf(err error) reason.Code { return classify(err) }

// classify finds the most specific reason in err's chain.
func classify(err error) reason.Code {
	if he, ok := errors.AsType[*HandshakeError](err); ok && he.Reason != reason.OK {
		return he.Reason
	}
	if re, ok := errors.AsType[*reason.Error](err); ok {
		return re.Code
	}
	if ce, ok := errors.AsType[*CredentialError](err); ok {
		return ce.Reason
	}
	if c, ok := classifyX509(err); ok {
		return c
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return reason.Plaintext
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" {
		return alertCode(oe.Err.Error())
	}
	if a, ok := errors.AsType[tls.AlertError](err); ok {
		return alertCode(a.Error())
	}
	return classifyText(err)
}

func classifyX509(err error) (reason.Code, bool) {
	if ie, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		switch ie.Reason {
		case x509.Expired:
			if strings.Contains(ie.Detail, "is before") {
				return reason.CertNotYetValid, true
			}
			return reason.CertExpired, true
		case x509.IncompatibleUsage:
			if ie.Cert != nil && pki.HasEKU(ie.Cert, x509.ExtKeyUsageClientAuth) {
				return reason.MissingServerAuth, true
			}
			return reason.MissingClientAuth, true
		case x509.NotAuthorizedToSign, x509.TooManyIntermediates, x509.NameConstraintsWithoutSANs:
			return reason.UnknownCA, true
		case x509.CANotAuthorizedForThisName, x509.CANotAuthorizedForExtKeyUsage:
			return reason.UnknownCA, true
		}
		return reason.HandshakeFailed, true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return reason.UnknownCA, true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return reason.NameMismatch, true
	}
	return 0, false
}

// alertCodes maps the TLS alerts a peer may send, by their RFC 8446 numbers.
var alertCodes = map[tls.AlertError]reason.Code{
	48:  reason.UnknownCA,       // unknown_ca
	45:  reason.CertExpired,     // certificate_expired
	44:  reason.Revoked,         // certificate_revoked
	116: reason.NoCertificate,   // certificate_required
	70:  reason.ProtocolTooOld,  // protocol_version
	120: reason.ALPNMismatch,    // no_application_protocol
	40:  reason.NoCommonCipher,  // handshake_failure
	71:  reason.NoCommonCipher,  // insufficient_security
	49:  reason.DNNotAuthorised, // access_denied
	42:  reason.RefusedByPeer,   // bad_certificate
	43:  reason.RefusedByPeer,   // unsupported_certificate
	46:  reason.RefusedByPeer,   // certificate_unknown
}

// alertCode maps a TLS alert the peer sent, known only by its text: Go keeps the received
// alert's type unexported, and errors.As(err, &tls.AlertError) is false for it. The text is
// crypto/tls's own (tls.AlertError(n).Error() renders the same table), so no copy of it
// lives here to drift.
func alertCode(text string) reason.Code {
	for a, code := range alertCodes {
		if a.Error() == text || strings.TrimPrefix(a.Error(), "tls: ") == text {
			return code
		}
	}
	return reason.HandshakeFailed
}

// tlsTexts are the failures crypto/tls reports as text only, with no error value or type to
// test for. TestCryptoTLSTexts makes each happen in a real handshake and checks that its
// text still holds the fragment, so that a Go upgrade that rewords one fails a test rather
// than turning a precise diagnosis into "handshake failed".
var tlsTexts = []struct {
	fragment string
	code     reason.Code
}{
	{"invalid signature by the", reason.KeyMismatch},
	{"didn't provide a certificate", reason.NoCertificate},
	{"does not look like a TLS handshake", reason.Plaintext},
	{"unsupported versions", reason.ProtocolTooOld},
	{"no cipher suite supported", reason.NoCommonCipher},
	{"no key exchanges supported", reason.NoCommonCipher}, // Go 1.24 and later; before: "no ECDHE curve"
	{"application protocol", reason.ALPNMismatch},
}

// classifyText covers errors crypto/tls only exposes as text.
func classifyText(err error) reason.Code {
	switch {
	case errors.Is(err, ErrNoAck):
		return reason.RefusedByPeer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return reason.HandshakeTimeout
	}
	msg := err.Error()
	for _, t := range tlsTexts {
		if strings.Contains(msg, t.fragment) {
			return t.code
		}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return reason.HandshakeTimeout
	}
	return reason.HandshakeFailed
}
