package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Error is a failure with what the client is told (Status, Reason, Msg, Fix) kept apart from
// the cause, which only the log sees (Err).
type Error struct {
	Status int
	Reason reason.Code // 0 when no documented reason applies
	Msg    string      // for the client: what went wrong
	Fix    string      // for the client: what to do; defaults to the reason's fix
	Err    error       // for the log: the cause, never sent

	Allow      []string // methods allowed, on 405
	RetryAfter int      // seconds, on 503
	Revision   int64    // current revision, on 412 (0: the key does not exist)
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func badRequest(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}

// fail is the one error renderer: it maps err to an *Error, logs the cause and writes a
// wire.Error body.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	h := w.Header()
	if len(e.Allow) > 0 {
		for _, m := range e.Allow {
			h.Add("Allow", m)
		}
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Status == http.StatusPreconditionFailed && e.Revision > 0 {
		h.Set("Etag", `"`+strconv.FormatInt(e.Revision, 10)+`"`)
	}
	if s.local != nil {
		h.Set(wire.HeaderRevision, strconv.FormatInt(s.local.Revision(), 10))
	}
	if e.Reason == reason.NotPrimary {
		if u := s.grp.PrimaryURL(); u != "" {
			h.Set(wire.HeaderPrimary, u) // where the client asks next
		}
	}
	body := wire.Error{Error: e.Msg, Fix: e.Fix}
	if e.Reason != reason.OK {
		body.Reason = wire.Reason{Code: int(e.Reason), Text: e.Reason.Text()}
		if body.Fix == "" {
			body.Fix = e.Reason.Fix()
		}
	}
	s.logFailure(r, e)
	s.writeJSON(w, e.Status, &body)
}

func (s *Server) logFailure(r *http.Request, e *Error) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", e.Status, "msg", e.Msg}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err)
	}
	if e.Reason != reason.OK {
		attrs = append(attrs, "reason", e.Reason.Name())
	}
	if e.Status >= 500 && !errors.Is(e.Err, context.Canceled) {
		s.log.Warn("request failed", attrs...)
		return
	}
	s.log.Debug("request refused", attrs...)
}

// toError maps the errors of Group, Reader and the request parsers to what the client sees.
func toError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if pe, ok := errors.AsType[*store.PreconditionError](err); ok {
		return preconditionFailed(pe, err)
	}
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Msg: "key not found", Err: err}
	}
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &Error{Status: http.StatusRequestEntityTooLarge, Err: err,
			Msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit),
			Fix: "store large objects elsewhere and keep a reference in mirrorkv, or raise --max-value-bytes on every member"}
	}
	if errors.Is(err, store.ErrBadCommand) {
		return &Error{Status: http.StatusBadRequest, Msg: "the command was refused as malformed", Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return reasonError(reason.Timeout, err)
	}
	if code := reason.Of(err, reason.OK); code != reason.OK {
		return reasonError(code, err)
	}
	return &Error{Status: http.StatusInternalServerError, Err: err,
		Msg: "internal error", Fix: "the member's log has the cause; retry, or try another member"}
}

func preconditionFailed(pe *store.PreconditionError, err error) *Error {
	e := &Error{Status: http.StatusPreconditionFailed, Revision: pe.Current, Err: err}
	switch {
	case pe.Current == 0:
		e.Msg = fmt.Sprintf("key %q does not exist (the request required revision %d)", pe.Key, pe.Want)
		e.Fix = "create it without a revision condition, or with If-None-Match: * (mirrorkv kv put --create)"
	case pe.Want == 0:
		e.Msg = fmt.Sprintf("key %q already exists at revision %d", pe.Key, pe.Current)
		e.Fix = "read it (mirrorkv kv get --revision) and write with If-Match: \"REV\" (--if-revision REV)"
	default:
		e.Msg = fmt.Sprintf("key %q is at revision %d, not %d", pe.Key, pe.Current, pe.Want)
		e.Fix = "read it again (mirrorkv kv get --revision) and retry with the current revision"
	}
	return e
}

// reasonError maps a reason code to an HTTP status. Codes for which another member may
// answer get 503 with Retry-After; codes that leave a write's outcome unknown get 504.
func reasonError(code reason.Code, err error) *Error {
	e := &Error{Reason: code, Msg: code.Text(), Err: err}
	switch code {
	case reason.NoPrimary, reason.Shutdown, reason.CatchingUp, reason.NotMember, reason.NotPrimary, reason.Busy:
		e.Status, e.RetryAfter = http.StatusServiceUnavailable, 1
	case reason.Unreachable:
		e.Status, e.RetryAfter = http.StatusBadGateway, 1
	case reason.Timeout, reason.LeadershipLost:
		e.Status = http.StatusGatewayTimeout
	case reason.DiskFull:
		e.Status = http.StatusInsufficientStorage
	case reason.PreferredNotFailover:
		e.Status = http.StatusConflict
	default:
		e.Status = http.StatusInternalServerError
	}
	return e
}
