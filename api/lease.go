package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Leases: POST /v1/leases grants one, POST /v1/leases/ID/keepalive renews it, DELETE
// /v1/leases/ID revokes it (deleting its keys), GET /v1/leases lists them and GET
// /v1/leases/ID shows one with its keys; PUT /v1/kv/KEY?lease=ID attaches a key. Every
// change is a command through the primary; expiry is the primary's (cluster/leases.go).

// DefaultMaxLeases bounds the leases the group holds, when Config.MaxLeases is zero.
const DefaultMaxLeases = 10000

// MinLeaseTTL is the shortest TTL granted, in seconds: a shorter one is raised to it, as
// etcd does, since a lease must outlive the keep-alive that a client sends through a
// failover. The answer says the TTL granted.
const MinLeaseTTL = 2

// maxLeaseBodyBytes bounds the body of a grant; {"ttl": N} is a few bytes.
const maxLeaseBodyBytes = 1 << 10

// LeaseReader reads this member's own copy of the leases; *store.Store implements it. A
// Reader without it serves no lease listing (501).
type LeaseReader interface {
	Leases() []store.Lease
	Lease(id int64) (store.Lease, error)
}

func (s *Server) leaseRoutes() {
	s.route("POST /v1/leases", "leases", levelReadWrite, s.grantLease)
	s.route("GET /v1/leases", "leases", levelReadOnly, s.listLeases)
	s.route("GET /v1/leases/{id}", "lease", levelReadOnly, s.getLease)
	s.route("DELETE /v1/leases/{id}", "lease", levelReadWrite, s.revokeLease)
	s.route("POST /v1/leases/{id}/keepalive", "lease-keepalive", levelReadWrite, s.keepAliveLease)
}

// ParseLeaseGrant decodes and checks the body of POST /v1/leases: {"ttl": SECONDS}, with
// a TTL of 1 to store.MaxLeaseTTL seconds. It returns the TTL to grant, raised to
// MinLeaseTTL.
func ParseLeaseGrant(body []byte) (int64, error) {
	var g wire.LeaseGrant
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return 0, leaseTTLError(fmt.Sprintf("the body is not {\"ttl\": SECONDS}: %s", jsonProblem(err)), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, leaseTTLError("the body has data after the JSON object", err)
	}
	if g.TTL < 1 || g.TTL > store.MaxLeaseTTL {
		return 0, leaseTTLError(fmt.Sprintf("ttl %d: want 1 to %d seconds", g.TTL, store.MaxLeaseTTL), nil)
	}
	return max(g.TTL, MinLeaseTTL), nil
}

func leaseTTLError(msg string, err error) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: reason.BadLeaseTTL, Msg: msg, Err: err}
}

// ParseLeaseID reads a lease ID: a positive decimal number.
func ParseLeaseID(v string) (int64, error) {
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != v {
		return 0, &Error{Status: http.StatusBadRequest, Reason: reason.BadLeaseID,
			Msg: fmt.Sprintf("lease ID %q is not a positive decimal number", v), Err: err}
	}
	return id, nil
}

// leaseError maps the store's lease errors to what the client sees, and leaves any other
// error to toError.
func leaseError(err error) error {
	var code reason.Code
	status := http.StatusTooManyRequests
	switch {
	case errors.Is(err, store.ErrLeaseNotFound):
		code, status = reason.LeaseNotFound, http.StatusNotFound
	case errors.Is(err, store.ErrTooManyLeases):
		code = reason.TooManyLeases
	case errors.Is(err, store.ErrLeaseFull):
		code = reason.LeaseFull
	default:
		return err
	}
	return &Error{Status: status, Reason: code, Msg: code.Text(), Err: err}
}

// applyLease applies a lease command and returns the lease it acted on.
func (s *Server) applyLease(r *http.Request, cmd store.Command) (store.Result, error) {
	res, err := s.grp.Apply(r.Context(), cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return store.Result{}, leaseError(err)
	}
	if res.Lease == nil {
		return store.Result{}, fmt.Errorf("apply lease op %d: the group returned no lease", cmd.Op)
	}
	return res, nil
}

func (s *Server) grantLease(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	body, err := io.ReadAll(limitBody(w, r, maxLeaseBodyBytes))
	if err != nil {
		return bodyError(err)
	}
	ttl, err := ParseLeaseGrant(body)
	if err != nil {
		return err
	}
	res, err := s.applyLease(r, store.Command{Op: store.OpLeaseGrant, LeaseTTL: ttl, MaxLeases: int64(s.cfg.MaxLeases)})
	if err != nil {
		return err
	}
	setHeaders(w.Header(), 0, res.Revision, -1)
	s.writeJSON(w, http.StatusCreated, wire.Lease{ID: res.Lease.ID, TTL: res.Lease.TTL})
	return nil
}

func (s *Server) keepAliveLease(w http.ResponseWriter, r *http.Request) error {
	id, err := s.leaseID(r)
	if err != nil {
		return err
	}
	res, err := s.applyLease(r, store.Command{Op: store.OpLeaseKeepAlive, Lease: id})
	if err != nil {
		return err
	}
	setHeaders(w.Header(), 0, res.Revision, -1)
	s.writeJSON(w, http.StatusOK, wire.Lease{ID: id, TTL: res.Lease.TTL})
	return nil
}

func (s *Server) revokeLease(w http.ResponseWriter, r *http.Request) error {
	id, err := s.leaseID(r)
	if err != nil {
		return err
	}
	res, err := s.applyLease(r, store.Command{Op: store.OpLeaseRevoke, Lease: id})
	if err != nil {
		return err
	}
	setHeaders(w.Header(), 0, res.Revision, -1)
	s.writeJSON(w, http.StatusOK, wire.Lease{ID: id, TTL: res.Lease.TTL, Keys: res.Lease.Keys,
		KeyCount: len(res.Lease.Keys), Revision: res.Revision})
	return nil
}

func (s *Server) leaseID(r *http.Request) (int64, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, err
	}
	return ParseLeaseID(r.PathValue("id"))
}

// leaseReader is the local store's lease view, after a read barrier unless ?stale.
func (s *Server) leaseReader(r *http.Request) (LeaseReader, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "stale"); err != nil {
		return nil, err
	}
	stale, err := boolParam(q, "stale")
	if err != nil {
		return nil, err
	}
	lr, ok := s.local.(LeaseReader)
	if !ok {
		return nil, &Error{Status: http.StatusNotImplemented, Msg: "this member serves no lease listing"}
	}
	return lr, s.readBarrier(r, stale)
}

func (s *Server) listLeases(w http.ResponseWriter, r *http.Request) error {
	lr, err := s.leaseReader(r)
	if err != nil {
		return err
	}
	out := wire.LeaseList{Leases: []wire.Lease{}}
	for _, l := range lr.Leases() {
		full, err := lr.Lease(l.ID)
		if errors.Is(err, store.ErrLeaseNotFound) {
			continue // revoked since the listing began
		}
		if err != nil {
			return err
		}
		out.Leases = append(out.Leases, wire.Lease{ID: l.ID, TTL: l.TTL, KeyCount: len(full.Keys)})
	}
	setHeaders(w.Header(), 0, s.local.Revision(), -1)
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getLease(w http.ResponseWriter, r *http.Request) error {
	id, err := ParseLeaseID(r.PathValue("id"))
	if err != nil {
		return err
	}
	lr, err := s.leaseReader(r)
	if err != nil {
		return err
	}
	l, err := lr.Lease(id)
	if err != nil {
		return leaseError(err)
	}
	setHeaders(w.Header(), 0, s.local.Revision(), -1)
	s.writeJSON(w, http.StatusOK, wire.Lease{ID: id, TTL: l.TTL, Keys: l.Keys, KeyCount: len(l.Keys)})
	return nil
}

// putLeaseParam reads ?lease=ID of a put; 0 when absent, which detaches the key.
func putLeaseParam(r *http.Request) (int64, error) {
	if r.URL.RawQuery == "" {
		return 0, nil
	}
	q := r.URL.Query()
	if err := checkQuery(q, "lease"); err != nil {
		return 0, err
	}
	v, ok := q["lease"]
	if !ok {
		return 0, nil
	}
	if len(v) != 1 {
		return 0, badRequest("give ?lease once")
	}
	return ParseLeaseID(v[0])
}
