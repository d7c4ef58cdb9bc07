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

// alertCode maps the text of a TLS alert the peer sent. Go keeps the alert type
// unexported and errors.As(err, &tls.AlertError) is false for received alerts.
func alertCode(text string) reason.Code {
	text = strings.TrimPrefix(text, "tls: ")
	switch text {
	case "unknown certificate authority":
		return reason.UnknownCA
	case "expired certificate":
		return reason.CertExpired
	case "revoked certificate":
		return reason.Revoked
	case "certificate required":
		return reason.NoCertificate
	case "protocol version not supported":
		return reason.ProtocolTooOld
	case "no application protocol":
		return reason.ALPNMismatch
	case "handshake failure", "insufficient security":
		return reason.NoCommonCipher
	case "access denied":
		return reason.DNNotAuthorised
	case "bad certificate", "unsupported certificate", "certificate unknown":
		return reason.RefusedByPeer
	}
	return reason.HandshakeFailed
}

// classifyText covers errors crypto/tls only exposes as text.
func classifyText(err error) reason.Code {
	msg := err.Error()
	switch {
	case errors.Is(err, ErrNoAck):
		return reason.RefusedByPeer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return reason.HandshakeTimeout
	case strings.Contains(msg, "invalid signature by the"):
		return reason.KeyMismatch
	case strings.Contains(msg, "didn't provide a certificate"):
		return reason.NoCertificate
	case strings.Contains(msg, "does not look like a TLS handshake"):
		return reason.Plaintext
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "unsupported protocol version"),
		strings.Contains(msg, "protocol version not supported"):
		return reason.ProtocolTooOld
	case strings.Contains(msg, "no cipher suite supported"), strings.Contains(msg, "no ECDHE curve"):
		return reason.NoCommonCipher
	case strings.Contains(msg, "application protocol"):
		return reason.ALPNMismatch
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return reason.HandshakeTimeout
	}
	return reason.HandshakeFailed
}
