package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"

	"github.com/mirrorkv/mirrorkv/client"
)

// ErrorKind is what went wrong with an operation, as far as a load test cares.
type ErrorKind uint8

// Error kinds, in the order reports list them.
const (
	Timeout  ErrorKind = iota // the operation's deadline passed, or a network timeout
	Refused                   // the connection was refused: nothing listens there
	Closed                    // the connection was reset or closed mid-request
	TLS                       // the handshake failed: a certificate refused on either side
	Conflict                  // a failed precondition (412, 409 or a failed transaction compare)
	NotFound                  // the key does not exist (404)
	Server                    // the server answered 5xx: no primary, outcome unknown, …
	Other                     // anything else, including other 4xx answers
	numErrorKinds
)

var kindNames = [numErrorKinds]string{
	Timeout: "timeout", Refused: "refused", Closed: "closed", TLS: "tls",
	Conflict: "conflict", NotFound: "notfound", Server: "5xx", Other: "other",
}

func (k ErrorKind) String() string {
	if k < numErrorKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// KindError lets a target say what kind an error is where Classify cannot tell, for
// example a gRPC status from another system's client.
type KindError struct {
	Kind ErrorKind
	Err  error
}

func (e *KindError) Error() string { return e.Kind.String() + ": " + e.Err.Error() }
func (e *KindError) Unwrap() error { return e.Err }

// Classify says what kind err is. A *KindError anywhere in the chain wins; then an answer
// of a mirrorkv member (*client.Error) by its status; then the transport's errors.
func Classify(err error) ErrorKind {
	if ke, ok := errors.AsType[*KindError](err); ok {
		return ke.Kind
	}
	if ce, ok := errors.AsType[*client.Error](err); ok {
		return ClassifyStatus(ce.Status)
	}
	switch {
	case isTLS(err):
		return TLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case isTimeout(err):
		return Timeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return Closed
	}
	return Other
}

// ClassifyStatus says what kind an HTTP error status is.
func ClassifyStatus(status int) ErrorKind {
	switch {
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusPreconditionFailed, status == http.StatusConflict:
		return Conflict
	case status >= 500:
		return Server
	}
	return Other
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// isTLS reports a refused handshake: a certificate that failed verification here, an alert
// from the peer (crypto/tls reports it as a net.OpError with Op "remote error"), or a
// record that was not TLS at all.
func isTLS(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error"
}
