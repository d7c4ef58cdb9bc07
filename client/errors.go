package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Error is an answer of a member other than 2xx: the HTTP status, the reason code (zero when
// none applies), the server's message and what to do about it.
type Error struct {
	Status   int
	Reason   wire.Reason
	Msg      string
	Fix      string
	Endpoint string // the member that answered
	// Primary is the client URL of the primary that a not-primary answer named, or "".
	Primary string
	// Revision is the key's current revision on a failed precondition (412); 0 when the key
	// does not exist.
	Revision int64

	retryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Msg)
	if e.Reason.Code != 0 {
		fmt.Fprintf(&b, " (reason %d: %s)", e.Reason.Code, e.Reason.Text)
	}
	return b.String()
}

// IsNotFound reports whether err says the key (or member) does not exist.
func IsNotFound(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Status == http.StatusNotFound
}

// IsPreconditionFailed reports whether err is a failed compare-and-set or create, and the
// key's current revision (0: it does not exist).
func IsPreconditionFailed(err error) (current int64, ok bool) {
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Status != http.StatusPreconditionFailed {
		return 0, false
	}
	return e.Revision, true
}

// IsOutcomeUnknown reports whether a write may or may not have been applied (the member
// timed out or lost leadership before the commit): read the key back before retrying.
func IsOutcomeUnknown(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Status == http.StatusGatewayTimeout
}

func parseError(endpoint string, resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, Endpoint: endpoint}
	var we wire.Error
	if json.Unmarshal(body, &we) == nil && we.Error != "" {
		e.Msg, e.Reason, e.Fix = we.Error, we.Reason, we.Fix
	} else {
		e.Msg = fmt.Sprintf("%s answered %s", endpoint, resp.Status)
	}
	if resp.StatusCode == http.StatusPreconditionFailed {
		e.Revision = revisionOf(resp.Header)
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		if p, err := normalizeEndpoint(resp.Header.Get(wire.HeaderPrimary)); err == nil {
			e.Primary = p
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.retryAfter = time.Duration(s) * time.Second
	}
	return e
}

// transportError is a request that got no HTTP answer.
type transportError struct {
	endpoint string
	err      error
}

func (e *transportError) Error() string {
	if isTLSError(e.err) {
		host := strings.TrimPrefix(e.endpoint, "https://")
		return fmt.Sprintf("TLS with %s: %v; run `mirrorkv probe %s` with the same CA, certificate and key for the reason", e.endpoint, e.err, host)
	}
	return fmt.Sprintf("reach %s: %v; check that the member is up and that the endpoint is right", e.endpoint, e.err)
}

// isTLSError reports a refused handshake: the server's certificate failed verification
// here, or the server refused ours with an alert.
func isTLSError(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	// crypto/tls reports an alert from the peer as a net.OpError with this Op.
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error"
}

func (e *transportError) Unwrap() error { return e.err }

// retryable says whether another endpoint might succeed where this one failed.
func retryable(err error, idempotent bool) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if e, ok := errors.AsType[*Error](err); ok {
		switch reason.Code(e.Reason.Code) {
		case reason.NoPrimary, reason.Shutdown, reason.NotMember, reason.CatchingUp, reason.NotPrimary, reason.Busy:
			return e.Status == http.StatusServiceUnavailable
		case reason.Unreachable:
			return e.Status == http.StatusBadGateway
		case reason.Timeout, reason.LeadershipLost:
			// A write's outcome is unknown then; a read changed nothing and may go again.
			return idempotent && e.Status == http.StatusGatewayTimeout
		}
		return false
	}
	if errors.Is(err, ErrRevoked) {
		return true // refused here, in the handshake: the request never left, and another member may be sound
	}
	te, ok := errors.AsType[*transportError](err)
	if !ok || isTLSError(te.err) {
		return false // a refused certificate is refused by every member alike
	}
	if idempotent {
		return true
	}
	// A write is retried only when it surely never left: the dial itself failed.
	if op, ok := errors.AsType[*net.OpError](te.err); ok && op.Op == "dial" {
		return true
	}
	return false
}

// ErrRevoked is returned (wrapped) by a connection made with WithCRL when the member's
// certificate is listed in the CRL. Nothing was sent to that member; a request, a write
// too, moves on to the next endpoint.
var ErrRevoked = errors.New("the member's certificate is revoked: do not trust that member; check its host")
