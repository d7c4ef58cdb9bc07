package apitest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Group is an in-memory api.Group and api.Reader: one map, one revision counter, applied
// at once. Fail makes every later call return an error, to exercise the error paths.
type Group struct {
	mu      sync.Mutex
	kvs     map[string]store.KV
	rev     int64
	members []wire.Member
	status  wire.Status
	err     error
	calls   map[string]int
	// primaryURL is what PrimaryURL answers.
	primaryURL string
	crlCheck   func(der []byte) (string, error)
	crls       [][]byte
	backup     []byte
	backupCut  bool
	leaseTable leaseTable // lease.go
}

// NewGroup returns an empty group whose only member, node, is the primary.
func NewGroup(node string) *Group {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Group{
		kvs:     map[string]store.KV{},
		members: []wire.Member{{Name: node, MemberAddr: "127.0.0.1:7001", DN: "CN=" + node}},
		status: wire.Status{Group: "test", Node: node, Role: wire.RolePrimary, PreviousRole: wire.RoleUnsync,
			Primary: node, PrimarySince: &since, ActiveNodes: 1, SyncNodes: 1, SyncPercent: 100,
			Members: []wire.MemberStatus{{Name: node, MemberAddr: "127.0.0.1:7001", DN: "CN=" + node, Voter: true, Role: wire.RolePrimary, SyncPercent: 100}}},
		calls: map[string]int{},
	}
}

// Fail makes every later call fail with err; nil heals the group.
func (g *Group) Fail(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
}

// SetStatus replaces what Status returns.
func (g *Group) SetStatus(st wire.Status) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status = st
}

// Calls reports how many times the method named op was called.
func (g *Group) Calls(op string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[op]
}

func (g *Group) enter(op string) error {
	g.mu.Lock()
	g.calls[op]++
	return g.err
}

// Apply applies a put or delete with its precondition, or a member change.
func (g *Group) Apply(_ context.Context, cmd store.Command) (store.Result, error) {
	defer g.mu.Unlock()
	if err := g.enter("Apply"); err != nil {
		return store.Result{}, err
	}
	if res, ok := g.applyLease(cmd); ok {
		return res, nil
	}
	cur := g.kvs[cmd.Key]
	if cmd.HasIf && cur.Revision != cmd.IfRevision {
		return store.Result{Revision: g.rev, Err: &store.PreconditionError{Key: cmd.Key, Want: cmd.IfRevision, Current: cur.Revision}}, nil
	}
	switch cmd.Op {
	case store.OpPut:
		g.rev++
		created := cur.Created
		if created == 0 {
			created = g.rev
		}
		g.kvs[cmd.Key] = store.KV{Key: cmd.Key, Value: cmd.Value, Revision: g.rev, Created: created}
		g.attachLease(cmd.Key, cmd.Lease)
	case store.OpDelete:
		if cur.Revision == 0 {
			return store.Result{Revision: g.rev, Err: store.ErrNotFound}, nil
		}
		g.rev++
		delete(g.kvs, cmd.Key)
		g.attachLease(cmd.Key, 0)
	case store.OpTxn:
		return g.applyTxn(cmd.Txn), nil
	}
	return store.Result{Revision: g.rev}, nil
}

// applyTxn evaluates t as the store does, with store.Compare.Holds, and applies its branch
// at one new revision.
func (g *Group) applyTxn(t *store.Txn) store.Result {
	ok := true
	for _, c := range t.Compares {
		cur := g.kvs[c.Key]
		ok = ok && c.Holds(cur.Revision, cur.Value)
	}
	ops := t.Then
	if !ok {
		ops = t.Else
	}
	for _, o := range ops {
		if _, found := g.leaseTable.leases[o.Lease]; o.Lease != 0 && !found {
			return store.Result{Revision: g.rev, Err: fmt.Errorf("txn lease %d: %w", o.Lease, store.ErrLeaseNotFound)}
		}
	}
	res := &store.TxnResult{Succeeded: ok, Ops: make([]store.OpResult, len(ops))}
	rev := g.rev + 1
	for i, o := range ops {
		cur, found := g.kvs[o.Key]
		switch {
		case o.Op == store.OpPut:
			if !found {
				cur.Created = rev
			}
			g.kvs[o.Key] = store.KV{Key: o.Key, Value: o.Value, Revision: rev, Created: cur.Created}
			g.attachLease(o.Key, o.Lease)
		case found:
			delete(g.kvs, o.Key)
			g.attachLease(o.Key, 0)
		default:
			continue
		}
		res.Ops[i].Revision = rev
		g.rev = rev
	}
	return store.Result{Revision: g.rev, Txn: res}
}

// ReadIndex succeeds at once unless the group was told to fail.
func (g *Group) ReadIndex(context.Context) error {
	defer g.mu.Unlock()
	return g.enter("ReadIndex")
}

// Status returns the status set by SetStatus.
func (g *Group) Status(context.Context) (wire.Status, error) {
	defer g.mu.Unlock()
	err := g.enter("Status")
	return g.status, err
}

// Members returns the members.
func (g *Group) Members(context.Context) ([]wire.Member, error) {
	defer g.mu.Unlock()
	err := g.enter("Members")
	return slices.Clone(g.members), err
}

// AddMember appends m.
func (g *Group) AddMember(_ context.Context, m wire.Member) error {
	defer g.mu.Unlock()
	if err := g.enter("AddMember"); err != nil {
		return err
	}
	g.members = append(g.members, m)
	return nil
}

// RemoveMember removes the member named name, or returns store.ErrNotFound.
func (g *Group) RemoveMember(_ context.Context, name string) error {
	defer g.mu.Unlock()
	if err := g.enter("RemoveMember"); err != nil {
		return err
	}
	i := slices.IndexFunc(g.members, func(m wire.Member) bool { return m.Name == name })
	if i < 0 {
		return store.ErrNotFound
	}
	g.members = slices.Delete(g.members, i, i+1)
	return nil
}

// SetPrimaryURL sets what PrimaryURL answers.
func (g *Group) SetPrimaryURL(u string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.primaryURL = u
}

// PrimaryURL returns the URL set by SetPrimaryURL, "" at first.
func (g *Group) PrimaryURL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.primaryURL
}

// Promote records the call.
func (g *Group) Promote(context.Context, string) error {
	defer g.mu.Unlock()
	return g.enter("Promote")
}

// TransferLeadership makes to the primary in the status.
func (g *Group) TransferLeadership(_ context.Context, to string) error {
	defer g.mu.Unlock()
	if err := g.enter("TransferLeadership"); err != nil {
		return err
	}
	g.status.Primary = to
	return nil
}

// SetBackup sets the bytes Backup streams; cut makes the stream fail after them.
func (g *Group) SetBackup(data []byte, cut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.backup, g.backupCut = data, cut
}

// Backup streams what SetBackup set.
func (g *Group) Backup(context.Context) (store.Snapshot, error) {
	defer g.mu.Unlock()
	if err := g.enter("Backup"); err != nil {
		return nil, err
	}
	return &fixedSnapshot{data: g.backup, cut: g.backupCut}, nil
}

type fixedSnapshot struct {
	data []byte
	cut  bool
}

func (f *fixedSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.data)
	if err == nil && f.cut {
		err = errors.New("disk read failed")
	}
	return int64(n), err
}

func (*fixedSnapshot) Release() {}

// Prefer records the preference in the status; "" withdraws it.
func (g *Group) Prefer(_ context.Context, name string) error {
	defer g.mu.Unlock()
	if err := g.enter("Prefer"); err != nil {
		return err
	}
	g.status.Preferred = name
	return nil
}

// Get reads a key.
func (g *Group) Get(key string) (store.KV, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	kv, ok := g.kvs[key]
	if !ok {
		return kv, store.ErrNotFound
	}
	return kv, nil
}

// List returns the keys in r, in order, as store.Store does.
func (g *Group) List(r store.Range) ([]store.KV, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var keys []string
	for k := range g.kvs {
		if strings.HasPrefix(k, r.Prefix) && k >= r.Start {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	n := len(keys)
	if r.Limit > 0 {
		n = min(n, r.Limit)
	}
	out := make([]store.KV, 0, n)
	used := 0
	for i, k := range keys {
		kv := g.kvs[k]
		size := len(kv.Key) + len(kv.Value)
		if (r.Limit > 0 && i == r.Limit) || (r.MaxBytes > 0 && i > 0 && used+size > r.MaxBytes) {
			return out, true, nil
		}
		used += size
		out = append(out, kv)
	}
	return out, false, nil
}

// Revision is the store's revision.
func (g *Group) Revision() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rev
}

// SetCRLCheck sets what PushCRL answers for a CRL: the port it is for, or the refusal.
// Without it every CRL is taken for the client port.
func (g *Group) SetCRLCheck(check func(der []byte) (string, error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.crlCheck = check
}

// PushCRL checks der with the function SetCRLCheck gave and records it as the group's CRL.
func (g *Group) PushCRL(_ context.Context, der []byte) (string, error) {
	defer g.mu.Unlock()
	if err := g.enter("PushCRL"); err != nil {
		return "", err
	}
	port := "client"
	if g.crlCheck != nil {
		var err error
		if port, err = g.crlCheck(der); err != nil {
			return "", err
		}
	}
	g.crls = append(g.crls, der)
	return port, nil
}

// CRLs returns the CRLs pushed so far, DER, oldest first.
func (g *Group) CRLs() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.crls)
}
