package apitest

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/mirrorkv/mirrorkv/store"
)

// leaseTable is the group's leases, as the store keeps them: a lease's ID is the number of
// the command that granted it, and its keys go with it in one revision.
type leaseTable struct {
	seq    int64
	leases map[int64]store.Lease // Keys sorted
	of     map[string]int64      // key -> lease
}

// applyLease applies a lease command, or checks the lease a put names; ok is false for any
// other command, which Apply then applies. g.mu must be held.
func (g *Group) applyLease(cmd store.Command) (res store.Result, ok bool) {
	t := &g.leaseTable
	if t.leases == nil {
		t.leases, t.of = map[int64]store.Lease{}, map[string]int64{}
	}
	t.seq++
	l, found := t.leases[cmd.Lease]
	notFound := store.Result{Revision: g.rev, Err: fmt.Errorf("lease %d: %w", cmd.Lease, store.ErrLeaseNotFound)}
	switch cmd.Op {
	case store.OpLeaseGrant:
		if cmd.MaxLeases > 0 && int64(len(t.leases)) >= cmd.MaxLeases {
			return store.Result{Revision: g.rev, Err: store.ErrTooManyLeases}, true
		}
		l = store.Lease{ID: t.seq, TTL: cmd.LeaseTTL, Touched: t.seq}
		t.leases[l.ID] = l
		return store.Result{Revision: g.rev, Lease: &l}, true
	case store.OpLeaseKeepAlive:
		if !found {
			return notFound, true
		}
		l.Touched = t.seq
		t.leases[l.ID] = l
		return store.Result{Revision: g.rev, Lease: &l}, true
	case store.OpLeaseRevoke:
		if !found {
			return notFound, true
		}
		ops := make([]store.TxnOp, len(l.Keys))
		for i, k := range l.Keys {
			ops[i] = store.TxnOp{Op: store.OpDelete, Key: k}
			delete(t.of, k)
		}
		delete(t.leases, l.ID)
		res := g.applyTxn(&store.Txn{Then: ops})
		return store.Result{Revision: res.Revision, Lease: &l}, true
	case store.OpPut:
		if cmd.Lease != 0 && !found {
			return notFound, true
		}
	}
	return store.Result{}, false
}

// attachLease moves key to lease id (0: none) once a put or delete of it applied.
func (g *Group) attachLease(key string, id int64) {
	t := &g.leaseTable
	if old, ok := t.of[key]; ok {
		l := t.leases[old]
		l.Keys = slices.DeleteFunc(slices.Clone(l.Keys), func(k string) bool { return k == key })
		t.leases[old] = l
		delete(t.of, key)
	}
	if id != 0 {
		l := t.leases[id]
		l.Keys = append(slices.Clone(l.Keys), key)
		slices.Sort(l.Keys)
		t.leases[id] = l
		t.of[key] = id
	}
}

// Leases returns the leases without their keys, by ID.
func (g *Group) Leases() []store.Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []store.Lease{}
	for _, l := range g.leaseTable.leases {
		l.Keys = nil
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b store.Lease) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Lease returns lease id with its keys.
func (g *Group) Lease(id int64) (store.Lease, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.leaseTable.leases[id]
	if !ok {
		return store.Lease{}, fmt.Errorf("lease %d: %w", id, store.ErrLeaseNotFound)
	}
	return l, nil
}
