package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// writeJSON encodes v into a pooled buffer first, so that an encoding failure can still be
// answered with a clean 500 and Content-Length is exact.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"encode the response","reason":{"code":0,"text":""}}` + "\n")
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // a failed write means the client is gone: nothing to do
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	st, err := s.grp.Status(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, &st)
	return nil
}

// healthz answers 200 "ok" when this member can serve linearizable reads and forward writes:
// the group has a primary and this member is in sync (PRIMARY, STANDBY or ASYNC). Otherwise
// 503 with the reason (no primary, catching up, or the member's own reason).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HealthTimeout)
	defer cancel()
	st, err := s.grp.Status(ctx)
	if err != nil {
		return err
	}
	if code := unhealthy(st); code != reason.OK {
		e := reasonError(code, nil)
		e.Status, e.RetryAfter = http.StatusServiceUnavailable, 1
		e.Msg = fmt.Sprintf("member %s is %s: %s", st.Node, st.Role, code.Text())
		return e
	}
	w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
	_, _ = io.WriteString(w, "ok\n")
	return nil
}

func unhealthy(st wire.Status) reason.Code {
	own := reason.Code(st.Reason.Code)
	switch {
	case st.Primary == "":
		return reason.NoPrimary
	case st.Role == wire.RoleUnsync && own != reason.OK:
		return own
	case st.Role == wire.RoleUnsync:
		return reason.CatchingUp
	}
	return reason.OK
}

// members lists the group's members as of the request, like a linearizable read: a change
// acknowledged before it is in the list, wherever the request lands. ?stale=true answers from
// this member's own copy, which a member cut off from the primary can still give.
func (s *Server) members(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "stale"); err != nil {
		return err
	}
	stale, err := boolParam(q, "stale")
	if err != nil {
		return err
	}
	if err := s.readBarrier(r, stale); err != nil {
		return err
	}
	if stale {
		w.Header()[wire.HeaderStale] = s.staleTrue
	}
	ms, err := s.grp.Members(r.Context())
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []wire.Member{}
	}
	s.writeJSON(w, http.StatusOK, ms)
	return nil
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	m, err := decodeMember(limitBody(w, r, maxMemberBodyBytes))
	if err != nil {
		return err
	}
	if err := s.grp.AddMember(r.Context(), m); err != nil {
		return memberError(m.Name, err)
	}
	s.writeJSON(w, http.StatusCreated, &m)
	return nil
}

// decodeMember reads and checks a POST /v1/members body. Unknown fields are refused: a
// misspelt "memberAddr" must not add a member without an address.
func decodeMember(body io.Reader) (wire.Member, error) {
	var m wire.Member
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return m, err
		}
		return m, &Error{Status: http.StatusBadRequest, Msg: "decode the member: " + err.Error(),
			Fix: `send {"name":"m4","memberAddr":"host:port","dn":"CN=m4","clientURL":"https://host:port","async":false}`}
	}
	if dec.More() {
		return m, badRequest("the body holds more than one member; add them one at a time")
	}
	return m, validateMember(m)
}

func validateMember(m wire.Member) error {
	var problems []string
	if err := checkName(m.Name); err != nil {
		problems = append(problems, err.Error())
	}
	if host, port, err := net.SplitHostPort(m.MemberAddr); err != nil || host == "" || port == "" {
		problems = append(problems, fmt.Sprintf("memberAddr %q: want HOST:PORT of the member port", m.MemberAddr))
	}
	if strings.TrimSpace(m.DN) == "" {
		problems = append(problems, "dn is empty: give the subject DN of the member's certificate (mirrorkv cert inspect shows it)")
	}
	if m.ClientURL != "" {
		if u, err := url.Parse(m.ClientURL); err != nil || u.Scheme != "https" || u.Host == "" {
			problems = append(problems, fmt.Sprintf("clientURL %q: want https://HOST:PORT", m.ClientURL))
		}
	}
	if len(problems) > 0 {
		return badRequest("invalid member: %s", strings.Join(problems, "; "))
	}
	return nil
}

// checkName allows the characters of a raft server ID that are safe in a URL path, a file
// name and a certificate CN.
func checkName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("name %q: want 1 to 64 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("name %q: use letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// memberError turns a missing member into 404 (not the 503 that NotMember means for the
// answering member itself, which a client would retry elsewhere); other failures go to the
// renderer as they are.
func memberError(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) || reason.Of(err, reason.OK) == reason.NotMember {
		return &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("member %q not found", name), Err: err,
			Fix: "mirrorkv member list shows the members"}
	}
	return err
}

// requireJSON refuses an admin POST whose Content-Type is not application/json. A browser
// sends a cross-site form or text/plain POST without asking first, and would present the
// admin certificate it holds; it asks (CORS preflight) before sending JSON, and mirrorkv
// answers no preflight, so such a request never reaches a handler.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return nil
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("admin requests must be sent as application/json, not %q", ct),
		Fix: "send the header Content-Type: application/json (the mirrorkv CLI and Go client do)"}
}

func (s *Server) memberName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := checkName(name); err != nil {
		return "", badRequest("member %s", err.Error())
	}
	return name, checkQuery(r.URL.Query())
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) error {
	return s.memberOp(w, r, s.grp.RemoveMember)
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) error {
	return s.memberOp(w, r, s.grp.Promote)
}

func (s *Server) transfer(w http.ResponseWriter, r *http.Request) error {
	return s.memberOp(w, r, s.grp.TransferLeadership)
}

func (s *Server) prefer(w http.ResponseWriter, r *http.Request) error {
	return s.memberOp(w, r, s.grp.Prefer)
}

// unprefer withdraws the preference: any failover member may lead.
func (s *Server) unprefer(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if err := s.grp.Prefer(r.Context(), ""); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) memberOp(w http.ResponseWriter, r *http.Request, op func(context.Context, string) error) error {
	name, err := s.memberName(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		if err := requireJSON(r); err != nil {
			return err
		}
	}
	if err := op(r.Context(), name); err != nil {
		return memberError(name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
