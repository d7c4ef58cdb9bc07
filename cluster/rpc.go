package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// maxIdlePerPeer bounds the idle RPC conns kept per member.
const maxIdlePerPeer = 64

// rpcClient calls member RPCs over pooled persistent conns, one request at a time per conn.
type rpcClient struct {
	m       *mux
	timeout time.Duration // bound of a dial
	// longer is how long a method may run on the peer: a call whose context has no
	// deadline is bounded by timeout + longer(method).
	longer func(method byte) time.Duration

	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

type rpcConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer

	watched chan struct{} // closed when the idle watcher has stopped
	dead    bool          // set by the watcher before it stops
}

func newRPCClient(m *mux, timeout time.Duration, longer func(byte) time.Duration) *rpcClient {
	return &rpcClient{m: m, timeout: timeout, longer: longer, idle: map[string][]*rpcConn{}}
}

// callError is a failed call; Sent says whether the request may have reached the peer.
type callError struct {
	Addr string
	Sent bool
	Err  error
}

func (e *callError) Error() string {
	return fmt.Sprintf("call member %s: %v", e.Addr, e.Err)
}
func (e *callError) Unwrap() error { return e.Err }

// call sends one request to addr and returns the response payload. A remote error comes back
// as a reason-coded error. An idempotent call is retried once on a fresh conn when a pooled
// conn turns out to be stale.
func (p *rpcClient) call(ctx context.Context, addr string, method byte, payload []byte, idempotent bool) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout+p.longer(method))
		defer cancel()
	}
	rc, pooled, err := p.get(ctx, addr)
	if err != nil {
		return nil, &callError{Addr: addr, Err: err}
	}
	kind, resp, err := p.roundTrip(ctx, rc, method, payload)
	if err != nil && pooled && idempotent && ctx.Err() == nil {
		if rc, err = p.dial(ctx, addr); err != nil {
			return nil, &callError{Addr: addr, Err: err}
		}
		kind, resp, err = p.roundTrip(ctx, rc, method, payload)
	}
	if err != nil {
		rc.c.Close()
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return nil, &callError{Addr: addr, Sent: true, Err: err}
	}
	p.put(addr, rc)
	if kind == respErr {
		return nil, decodeRemoteError(resp)
	}
	return resp, nil
}

func (p *rpcClient) roundTrip(ctx context.Context, rc *rpcConn, method byte, payload []byte) (byte, []byte, error) {
	deadline, _ := ctx.Deadline() // call gave it one
	_ = rc.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = rc.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeFrame(rc.w, method, payload); err != nil {
		rc.c.Close()
		return 0, nil, err
	}
	kind, resp, err := readFrame(rc.r, maxFrame)
	if err != nil {
		rc.c.Close()
		return 0, nil, err
	}
	_ = rc.c.SetDeadline(time.Time{})
	return kind, resp, nil
}

func (p *rpcClient) get(ctx context.Context, addr string) (*rpcConn, bool, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrShutdown
	}
	for l := p.idle[addr]; len(l) > 0; l = p.idle[addr] {
		rc := l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		p.mu.Unlock()
		if rc.unwatch() {
			return rc, true, nil
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	rc, err := p.dial(ctx, addr)
	return rc, false, err
}

func (p *rpcClient) dial(ctx context.Context, addr string) (*rpcConn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	c, err := p.m.dial(ctx, addr, headerRPC)
	if err != nil {
		return nil, err
	}
	return &rpcConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

func (p *rpcClient) put(addr string, rc *rpcConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= maxIdlePerPeer {
		rc.c.Close()
		return
	}
	rc.watch()
	p.idle[addr] = append(p.idle[addr], rc)
}

// watch starts watching a conn as it goes idle. The peer may close it while it sits in the
// pool (a restart; its TLS layer cutting it off after a reload), and a request that must
// not be sent twice must not find that out only after sending it. The watcher notices at
// once and closes the conn.
func (rc *rpcConn) watch() {
	rc.watched, rc.dead = make(chan struct{}), false
	go func() {
		defer close(rc.watched)
		if _, err := rc.r.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
			rc.dead = true // closed, reset, or bytes nobody asked for
			rc.c.Close()
		}
	}()
}

// unwatch stops the watcher of a conn taken from the pool and reports whether the conn is
// still fit for a request.
func (rc *rpcConn) unwatch() bool {
	_ = rc.c.SetReadDeadline(time.Unix(1, 0))
	<-rc.watched
	_ = rc.c.SetReadDeadline(time.Time{})
	return !rc.dead
}

// drop closes the idle conns to addr, a member that left the group.
func (p *rpcClient) drop(addr string) {
	p.mu.Lock()
	idle := p.idle[addr]
	delete(p.idle, addr)
	p.mu.Unlock()
	for _, rc := range idle {
		rc.c.Close()
	}
}

// flush closes every idle conn: after a leader change, conns to the old primary are likely
// dead, and a forwarded write must not find that out after sending.
func (p *rpcClient) flush() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*rpcConn{}
	p.mu.Unlock()
	for _, l := range idle {
		for _, rc := range l {
			rc.c.Close()
		}
	}
}

func (p *rpcClient) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.flush()
}

// remoteError is an error that crossed the member channel: the peer's message, and the
// sentinel of its reason code so that errors.Is still works on this side.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// encodeError writes an error's reason code, its message without the code's text (the
// receiver adds it back) and, for a not-primary refusal, the primary the refuser knows of.
func encodeError(err error) []byte {
	var e enc
	e.uvarint(uint64(reason.Of(err, reason.OK)))
	msg := err.Error()
	if re, ok := errors.AsType[*reason.Error](err); ok && re.Err != nil {
		msg = re.Err.Error()
	}
	e.str(msg)
	if p, ok := hintOf(err); ok {
		e.str(p.addr)
		e.str(p.id)
	}
	return e.b
}

func decodeRemoteError(p []byte) error {
	d := dec{b: p}
	code, msg := reason.Code(d.uvarint()), d.str()
	var hint primary
	if d.err == nil && len(d.b) > 0 {
		hint = primary{addr: d.str(), id: d.str()}
	}
	if err := d.done(); err != nil {
		return fmt.Errorf("decode remote error: %w", err)
	}
	var err error = &remoteError{msg: msg}
	switch code {
	case reason.NotPrimary:
		err = &notPrimaryError{leader: hint, err: &remoteError{msg: msg, sentinel: ErrNotPrimary}}
	case reason.NoPrimary:
		err = &remoteError{msg: msg, sentinel: ErrNoPrimary}
	case reason.NotMember:
		err = &remoteError{msg: msg, sentinel: ErrUnknownMember}
	}
	if code == reason.OK {
		return err
	}
	return reason.Wrap(code, err)
}

// Result error kinds on the wire.
const (
	resultOK byte = iota
	resultNotFound
	resultPrecondition
	resultBadCommand
	resultOther
	// Leases (leases.go): a result with a lease, and the lease errors. Only a member that
	// forwards lease commands gets them, so older decoders never see them.
	resultLease
	resultLeaseNotFound
	resultTooManyLeases
	resultLeaseFull
)

func encodeResult(r store.Result) []byte {
	var e enc
	e.varint(r.Revision)
	var pe *store.PreconditionError
	switch {
	case r.Err == nil && r.Lease != nil:
		encodeLeaseResult(&e, r.Lease)
	case r.Err == nil:
		e.b = append(e.b, resultOK)
		if r.Txn != nil {
			encodeTxnResult(&e, r.Txn)
		}
	case errors.As(r.Err, &pe):
		e.b = append(e.b, resultPrecondition)
		e.str(pe.Key)
		e.varint(pe.Want)
		e.varint(pe.Current)
	case errors.Is(r.Err, store.ErrNotFound):
		e.b = append(e.b, resultNotFound)
	case leaseErrKind(r.Err) != 0:
		e.b = append(e.b, leaseErrKind(r.Err))
		e.str(r.Err.Error())
	case errors.Is(r.Err, store.ErrBadCommand):
		e.b = append(e.b, resultBadCommand)
		e.str(r.Err.Error())
	default:
		e.b = append(e.b, resultOther)
		e.str(r.Err.Error())
	}
	return e.b
}

func decodeResult(p []byte) (store.Result, error) {
	d := dec{b: p}
	res := store.Result{Revision: d.varint()}
	if len(d.b) == 0 {
		d.fail()
	} else {
		kind := d.b[0]
		d.b = d.b[1:]
		switch kind {
		case resultOK:
			if d.err == nil && len(d.b) > 0 {
				res.Txn = decodeTxnResult(&d)
			}
		case resultNotFound:
			res.Err = store.ErrNotFound
		case resultPrecondition:
			res.Err = &store.PreconditionError{Key: d.str(), Want: d.varint(), Current: d.varint()}
		case resultBadCommand:
			res.Err = fmt.Errorf("primary refused command (%s): %w", d.str(), store.ErrBadCommand)
		case resultOther:
			res.Err = &remoteError{msg: d.str()}
		case resultLease:
			res.Lease = decodeLeaseResult(&d)
		case resultLeaseNotFound, resultTooManyLeases, resultLeaseFull:
			res.Err = &remoteError{msg: d.str(), sentinel: leaseErrs[kind]}
		default:
			d.fail()
		}
	}
	if err := d.done(); err != nil {
		return store.Result{}, fmt.Errorf("decode result: %w", err)
	}
	return res, nil
}

// encodeTxnResult appends what a transaction did after resultOK. Only a txn's result carries
// it, and only a member that forwards txns asks for one, so older decoders never see it.
func encodeTxnResult(e *enc, t *store.TxnResult) {
	e.bool(t.Succeeded)
	e.uvarint(uint64(len(t.Ops)))
	for _, o := range t.Ops {
		e.varint(o.Revision)
	}
}

func decodeTxnResult(d *dec) *store.TxnResult {
	t := &store.TxnResult{Succeeded: d.bool()}
	n := d.count(1)
	t.Ops = make([]store.OpResult, 0, n)
	for range n {
		t.Ops = append(t.Ops, store.OpResult{Revision: d.varint()})
	}
	return t
}

// selfInfo is a member's own view, answered by the Self RPC.
type selfInfo struct {
	Name         string
	State        raft.RaftState
	Leader       string // leader's server ID as this member sees it
	Applied      uint64 // last raft index the store reflects
	Last         uint64 // last raft index in this member's log
	Commit       uint64
	Restoring    bool
	RestoreDone  int64 // snapshot bytes restored so far
	RestoreTotal int64 // size of the snapshot being restored
	Restores     uint64
	LastContact  time.Time // last contact with the leader (zero on the leader)
	CertNotAfter time.Time
	TLSHealth    reason.Code // Config.TLSHealth; absent from older members
	// Expiries is Config.TLSExpiries, encoded after TLSHealth when there are any and the
	// asking member said it reads them (selfWithExpiries); absent from older members.
	Expiries []wire.Expiry
}

// selfWithExpiries, as the payload of a Self request, asks for the expiries. A member that
// predates them ignores the payload and answers without them, and a member asked with an
// empty payload (by an older one) leaves them out: an older decoder refuses trailing bytes.
const selfWithExpiries byte = 1

// answerSelf encodes s for the Self request req.
func answerSelf(req []byte, s selfInfo) []byte {
	if len(req) == 0 || req[0] < selfWithExpiries {
		s.Expiries = nil
	}
	return encodeSelf(s)
}

func encodeSelf(s selfInfo) []byte {
	var e enc
	e.str(s.Name)
	e.uvarint(uint64(s.State))
	e.str(s.Leader)
	e.uvarint(s.Applied)
	e.uvarint(s.Last)
	e.uvarint(s.Commit)
	e.bool(s.Restoring)
	e.varint(s.RestoreDone)
	e.varint(s.RestoreTotal)
	e.uvarint(s.Restores)
	e.time(s.LastContact)
	e.time(s.CertNotAfter)
	e.uvarint(uint64(s.TLSHealth))
	if len(s.Expiries) > 0 {
		e.uvarint(uint64(len(s.Expiries)))
		for _, x := range s.Expiries {
			e.str(x.Port)
			e.str(x.Material)
			e.str(x.Subject)
			e.time(x.At)
			e.uvarint(uint64(x.Reason.Code))
			e.str(x.Reason.Text)
		}
	}
	return e.b
}

func decodeSelf(p []byte) (selfInfo, error) {
	d := dec{b: p}
	s := selfInfo{Name: d.str(), State: raft.RaftState(d.uvarint()), Leader: d.str(),
		Applied: d.uvarint(), Last: d.uvarint(), Commit: d.uvarint(), Restoring: d.bool(),
		RestoreDone: d.varint(), RestoreTotal: d.varint(), Restores: d.uvarint(),
		LastContact: d.time(), CertNotAfter: d.time()}
	if d.err == nil && len(d.b) > 0 {
		s.TLSHealth = reason.Code(d.uvarint())
	}
	if d.err == nil && len(d.b) > 0 {
		s.Expiries = decodeExpiries(&d)
	}
	if err := d.done(); err != nil {
		return selfInfo{}, fmt.Errorf("decode self status: %w", err)
	}
	return s, nil
}

func decodeExpiries(d *dec) []wire.Expiry {
	n := d.count(6) // four strings, a time and a code: at least a byte each
	out := make([]wire.Expiry, 0, n)
	for range n {
		x := wire.Expiry{Port: d.str(), Material: d.str(), Subject: d.str(), At: d.time()}
		x.Reason = wire.Reason{Code: int(d.uvarint()), Text: d.str()}
		out = append(out, x)
	}
	return out
}
