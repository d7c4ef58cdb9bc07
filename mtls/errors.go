package mtls

import (
	"errors"
	"fmt"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Sentinel errors.
var (
	// ErrClosed is returned by Accept after the listener has been closed.
	ErrClosed = errors.New("mtls listener closed")
	// ErrNoAck is returned (wrapped in a HandshakeError) by Dial when the acceptor closed
	// the connection after the handshake without acknowledging it.
	ErrNoAck = errors.New("peer closed the connection without accepting it")
)

// HandshakeError is a refused or failed handshake on the member channel: Dial returns it,
// and the listeners log it. Reason says why, Peer is the remote address.
type HandshakeError struct {
	Reason reason.Code
	Peer   string
	Err    error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("tls handshake with %s: %s (reason %d): %v", e.Peer, e.Reason.Text(), int(e.Reason), e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// CredentialError is a credential file that cannot be used: NewSource and Reload return it.
// File names the file, Reason the cause.
type CredentialError struct {
	Reason reason.Code
	File   string
	Err    error
}

func (e *CredentialError) Error() string {
	msg := fmt.Sprintf("load %s: %v", e.File, e.Err)
	if e.File == "" {
		msg = e.Err.Error()
	}
	if fix := e.Reason.Fix(); fix != "" {
		msg += "; " + fix
	}
	return msg
}

func (e *CredentialError) Unwrap() error { return e.Err }

func credErr(code reason.Code, file string, format string, a ...any) error {
	return &CredentialError{Reason: code, File: file, Err: fmt.Errorf(format, a...)}
}

// refuse makes a policy decision: the peer's certificate fails a check. It is what our
// VerifyConnection callbacks return, so the handshake error carries the reason.
func refuse(code reason.Code, format string, a ...any) error {
	return reason.Wrap(code, fmt.Errorf(format, a...))
}
