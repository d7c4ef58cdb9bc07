package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// self is this member's own view, as the Self RPC reports it.
func (c *Cluster) self() selfInfo {
	_, leader := c.raft.LeaderWithID()
	state := c.raft.State()
	contact := c.raft.LastContact()
	if state == raft.Leader {
		contact = time.Now()
	}
	return selfInfo{Name: c.cfg.Name, State: state, Leader: string(leader),
		Applied: c.fsm.appliedIndex(), Last: c.raft.LastIndex(), Commit: c.raft.CommitIndex(),
		Restoring: c.fsm.restoring.Load(), RestoreDone: c.fsm.restoreDone.Load(),
		RestoreTotal: c.fsm.restoreTotal.Load(), Restores: c.fsm.restores.Load(),
		LastContact: contact, CertNotAfter: c.cfg.CertNotAfter(), TLSHealth: c.cfg.TLSHealth()}
}

// selfOf asks the member at addr for its view; this member answers for itself directly.
func (c *Cluster) selfOf(ctx context.Context, name, addr string) (selfInfo, error) {
	if name == c.cfg.Name {
		return c.self(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StatusTimeout)
	defer cancel()
	p, err := c.rpc.call(ctx, addr, methodSelf, nil, true)
	if err != nil {
		return selfInfo{}, err
	}
	return decodeSelf(p)
}

// statusEntry joins what raft and the store know of one member with its own view.
type statusEntry struct {
	member store.Member
	server *raft.Server
	info   selfInfo
	err    error
}

// Status is this member's view of the group. Every member is asked for its own view
// concurrently, under StatusTimeout; one that does not answer is UNSYNC, unreachable.
func (c *Cluster) Status(ctx context.Context) (wire.Status, error) {
	if c.closing.Load() {
		return wire.Status{}, shutdownErr()
	}
	entries, err := c.statusEntries()
	if err != nil {
		return wire.Status{}, err
	}
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Go(func() { e.info, e.err = c.selfOf(ctx, e.member.Name, e.member.MemberAddr) })
	}
	wg.Wait()
	_, leader := c.raft.LeaderWithID()
	var primaryLast uint64
	for _, e := range entries {
		if e.err == nil && e.info.State == raft.Leader && e.member.Name == string(leader) {
			primaryLast = e.info.Last
		}
	}
	st := wire.Status{Group: c.cfg.GroupID, Node: c.cfg.Name, Primary: string(leader),
		AppliedIndex: c.fsm.appliedIndex(), CommitIndex: c.raft.CommitIndex(),
		Role: wire.RoleUnsync, Reason: reasonOf(reason.NotMember)}
	for _, e := range entries {
		ms := c.memberStatus(e, primaryLast)
		if e.member.Name == c.cfg.Name {
			ms = c.stalledStatus(ms)
		}
		st.Members = append(st.Members, ms)
		if e.err == nil {
			st.ActiveNodes++
		}
		if ms.Role != wire.RoleUnsync {
			st.SyncNodes++
		}
		if e.member.Name == c.cfg.Name {
			st.Role, st.SyncPercent, st.Reason = ms.Role, ms.SyncPercent, ms.Reason
		}
	}
	st.PreviousRole, st.PrimarySince = c.noteRole(st.Role)
	return st, nil
}

// statusEntries lists every member raft or the store knows of, by name.
func (c *Cluster) statusEntries() ([]*statusEntry, error) {
	ms, err := c.st.Members()
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	byName := map[string]*statusEntry{}
	for _, m := range ms {
		byName[m.Name] = &statusEntry{member: m}
	}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			e := byName[string(s.ID)]
			if e == nil {
				e = &statusEntry{member: store.Member{Name: string(s.ID), MemberAddr: string(s.Address)}}
				byName[string(s.ID)] = e
			}
			e.server = &s
		}
	}
	if byName[c.cfg.Name] == nil {
		byName[c.cfg.Name] = &statusEntry{member: c.selfMember()}
	}
	entries := make([]*statusEntry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *statusEntry) int { return cmpString(a.member.Name, b.member.Name) })
	return entries, nil
}

func (c *Cluster) memberStatus(e *statusEntry, primaryLast uint64) wire.MemberStatus {
	ms := wire.MemberStatus{Name: e.member.Name, MemberAddr: e.member.MemberAddr,
		ClientURL: e.member.ClientURL, DN: e.member.DN, Role: wire.RoleUnsync,
		Voter: e.server != nil && e.server.Suffrage == raft.Voter}
	if e.err != nil {
		ms.Reason = reasonOf(reason.Unreachable)
		return ms
	}
	in := e.info
	ms.LastContact, ms.CertNotAfter = timePtr(in.LastContact), timePtr(in.CertNotAfter)
	if primaryLast > 0 {
		ms.Lag = primaryLast - min(in.Applied, primaryLast)
		ms.SyncPercent = percent(in.Applied, primaryLast)
	}
	switch {
	case in.State == raft.Leader:
		ms.Role, ms.SyncPercent = wire.RolePrimary, 100
	case e.server == nil:
		ms.Reason = reasonOf(reason.NotMember)
	case in.State != raft.Follower:
		ms.Reason = reasonOf(reason.NoPrimary) // a candidate: it lost its primary
	case in.Restoring:
		ms.Reason = reasonOf(reason.CatchingUp)
		if in.RestoreTotal > 0 {
			ms.SyncPercent = percent(uint64(in.RestoreDone), uint64(in.RestoreTotal))
		}
	case primaryLast == 0:
		ms.Reason = reasonOf(reason.NoPrimary)
	case !c.caughtUp(in, primaryLast) || ms.Lag > c.cfg.SyncLag:
		ms.Reason = reasonOf(reason.CatchingUp)
	case ms.Voter:
		ms.Role, ms.SyncPercent = wire.RoleStandby, 100
	default:
		ms.Role, ms.SyncPercent = wire.RoleAsync, 100
	}
	if ms.Reason.Code == int(reason.OK) && in.TLSHealth.Known() && in.TLSHealth != reason.OK {
		ms.Reason = reasonOf(in.TLSHealth) // in sync, but something to act on
	}
	return ms
}

// noteRole records this member's role as Status saw it and returns the role before the
// last change and since when the current primary leads.
func (c *Cluster) noteRole(r wire.Role) (wire.Role, *time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != c.role {
		c.prevRole, c.role = c.role, r
	}
	return c.prevRole, timePtr(c.primarySince)
}

// watchRole follows leader and state changes: it keeps the previous role and the time the
// primary took over, drops pooled RPC conns to a former primary, and makes a new primary
// commit its first entry.
func (c *Cluster) watchRole(ch <-chan raft.Observation) {
	var leader raft.ServerID
	for {
		select {
		case <-c.ctx.Done():
			return
		case o := <-ch:
			lo, ok := o.Data.(raft.LeaderObservation)
			if ok && lo.LeaderID != leader {
				leader = lo.LeaderID
				c.leaderChanged(leader)
			}
			c.noteRole(c.coarseRole())
		}
	}
}

func (c *Cluster) leaderChanged(leader raft.ServerID) {
	c.metrics.leaderChanges.Inc()
	c.rpc.flush()
	c.mu.Lock()
	if leader != "" {
		c.primarySince = time.Now()
	} else {
		c.primarySince = time.Time{}
	}
	c.mu.Unlock()
	if string(leader) == c.cfg.Name {
		c.wg.Go(c.onLeader)
	}
}

// coarseRole is the role known without asking anyone: raft state and suffrage.
func (c *Cluster) coarseRole() wire.Role {
	switch c.raft.State() {
	case raft.Leader:
		return wire.RolePrimary
	case raft.Follower:
		if s := c.raftServer(c.cfg.Name); s != nil {
			if s.Suffrage == raft.Voter {
				return wire.RoleStandby
			}
			return wire.RoleAsync
		}
	}
	return wire.RoleUnsync
}

// onLeader commits the new primary's first entry: its own member record if the group has
// none yet (the bootstrap member), a no-op otherwise. Until then read index waits.
func (c *Cluster) onLeader() {
	term := c.raft.CurrentTerm()
	cmd := store.Command{Op: store.OpNoop}
	if _, err := c.member(c.cfg.Name); err != nil {
		cmd = store.Command{Op: store.OpSetMember, Member: c.selfMember()}
	}
	res, err := c.applyLocal(c.ctx, store.EncodeCommand(cmd))
	if err == nil {
		err = res.Err
	}
	if err != nil {
		c.log.Debug("commit first entry as primary", "err", err)
		return
	}
	c.readyTerm.Store(term)
	c.markMembersDirty()
}

func reasonOf(code reason.Code) wire.Reason { return wire.Reason{Code: int(code), Text: code.Text()} }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func percent(a, b uint64) float64 {
	if b == 0 || a >= b {
		return 100
	}
	return float64(a) * 100 / float64(b)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
