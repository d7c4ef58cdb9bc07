package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// statusReporter answers for this member's own view (the Self RPC), gathers every member's
// into the group's status, and follows leader changes for the roles it reports.
type statusReporter struct {
	cfg           Config
	raft          statusRaft
	fsm           *fsm // applied index and snapshot restore progress
	st            statusStore
	rpc           memberCaller
	life          *life
	leaderChanges prometheus.Counter
	flush         func() // drops pooled RPC conns, those to a former primary among them
	becamePrimary func() // runs once this member is the new leader

	recovery *wire.Recovery // the last disaster recovery of this member, if any

	mu           sync.Mutex
	role         wire.Role
	prevRole     wire.Role
	primarySince time.Time
}

// statusStore is the store as status reads it: the member records, and whether it applies.
type statusStore interface {
	memberLister
	staller
}

// self is this member's own view, as the Self RPC reports it.
func (s *statusReporter) self() selfInfo {
	_, leader := s.raft.LeaderWithID()
	state := s.raft.State()
	contact := s.raft.LastContact()
	if state == raft.Leader {
		contact = time.Now()
	}
	return selfInfo{Name: s.cfg.Name, State: state, Leader: string(leader),
		Applied: s.fsm.appliedIndex(), Last: s.raft.LastIndex(), Commit: s.raft.CommitIndex(),
		Restoring: s.fsm.restoring.Load(), RestoreDone: s.fsm.restoreDone.Load(),
		RestoreTotal: s.fsm.restoreTotal.Load(), Restores: s.fsm.restores.Load(),
		LastContact: contact, CertNotAfter: s.cfg.CertNotAfter(), TLSHealth: s.cfg.TLSHealth(),
		Expiries: s.cfg.TLSExpiries()}
}

// selfOf asks the member at addr for its view; this member answers for itself directly.
func (s *statusReporter) selfOf(ctx context.Context, name, addr string) (selfInfo, error) {
	if name == s.cfg.Name {
		return s.self(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
	defer cancel()
	p, err := s.rpc.call(ctx, addr, methodSelf, []byte{selfWithExpiries}, true)
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

// status is this member's view of the group; see Cluster.Status.
func (s *statusReporter) status(ctx context.Context) (wire.Status, error) {
	if s.life.closing.Load() {
		return wire.Status{}, shutdownErr()
	}
	entries, err := s.entries()
	if err != nil {
		return wire.Status{}, err
	}
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Go(func() { e.info, e.err = s.selfOf(ctx, e.member.Name, e.member.MemberAddr) })
	}
	wg.Wait()
	_, leader := s.raft.LeaderWithID()
	var primaryLast uint64
	for _, e := range entries {
		if e.err == nil && e.info.State == raft.Leader && e.member.Name == string(leader) {
			primaryLast = e.info.Last
		}
	}
	st := wire.Status{Version: wire.StatusVersion, Status: wire.HAInactive, Enabled: true,
		Group: s.cfg.GroupID, Node: s.cfg.Name, Primary: string(leader),
		AppliedIndex: s.fsm.appliedIndex(), CommitIndex: s.raft.CommitIndex(),
		Role: wire.RoleUnsync, Reason: reasonOf(reason.NotMember)}
	for _, e := range entries {
		ms := memberStatus(e, primaryLast, s.cfg.SyncLag)
		if e.member.Name == s.cfg.Name {
			ms = stalledStatus(ms, s.st.Stalled())
		}
		st.Members = append(st.Members, ms)
		if e.err == nil {
			st.ActiveNodes++
		}
		if ms.Role != wire.RoleUnsync {
			st.SyncNodes++
		}
		if e.member.Name == s.cfg.Name {
			st.Role, st.SyncPercent, st.Reason = ms.Role, ms.SyncPercent, ms.Reason
			if e.server != nil {
				st.Status = wire.HAActive
			}
		}
	}
	st.PreviousRole, st.PrimarySince = s.noteRole(st.Role)
	if ms, err := s.st.Members(); err == nil {
		st.Preferred, st.PreferredReason = preferStatus(ms, st.Members)
	}
	st.Recovery = s.recovery
	return st, nil
}

// entries lists every member raft or the store knows of, by name.
func (s *statusReporter) entries() ([]*statusEntry, error) {
	ms, err := s.st.Members()
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	byName := map[string]*statusEntry{}
	for _, m := range ms {
		byName[m.Name] = &statusEntry{member: m}
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			e := byName[string(srv.ID)]
			if e == nil {
				e = &statusEntry{member: store.Member{Name: string(srv.ID), MemberAddr: string(srv.Address)}}
				byName[string(srv.ID)] = e
			}
			e.server = &srv
		}
	}
	if byName[s.cfg.Name] == nil {
		byName[s.cfg.Name] = &statusEntry{member: selfMember(s.cfg)}
	}
	entries := make([]*statusEntry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *statusEntry) int { return cmpString(a.member.Name, b.member.Name) })
	return entries, nil
}

// memberStatus is one member's role and reason, judged against the primary's last index.
func memberStatus(e *statusEntry, primaryLast, syncLag uint64) wire.MemberStatus {
	ms := wire.MemberStatus{Name: e.member.Name, MemberAddr: e.member.MemberAddr,
		ClientURL: e.member.ClientURL, DN: e.member.DN, Role: wire.RoleUnsync,
		Voter: e.server != nil && e.server.Suffrage == raft.Voter}
	if e.err != nil {
		ms.Reason = reasonOf(reason.Unreachable)
		return ms
	}
	in := e.info
	ms.LastContact, ms.CertNotAfter, ms.Expiries = timePtr(in.LastContact), timePtr(in.CertNotAfter), in.Expiries
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
	case !caughtUp(in, primaryLast, syncLag) || ms.Lag > syncLag:
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
func (s *statusReporter) noteRole(r wire.Role) (wire.Role, *time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r != s.role {
		s.prevRole, s.role = s.role, r
	}
	return s.prevRole, timePtr(s.primarySince)
}

// watchRole follows leader and state changes: it keeps the previous role and the time the
// primary took over, drops pooled RPC conns to a former primary, and makes a new primary
// commit its first entry.
func (s *statusReporter) watchRole(ch <-chan raft.Observation) {
	var leader raft.ServerID
	for {
		select {
		case <-s.life.ctx.Done():
			return
		case o := <-ch:
			lo, ok := o.Data.(raft.LeaderObservation)
			if ok && lo.LeaderID != leader {
				leader = lo.LeaderID
				s.leaderChanged(leader)
			}
			s.noteRole(s.coarseRole())
		}
	}
}

func (s *statusReporter) leaderChanged(leader raft.ServerID) {
	s.leaderChanges.Inc()
	s.flush()
	s.mu.Lock()
	if leader != "" {
		s.primarySince = time.Now()
	} else {
		s.primarySince = time.Time{}
	}
	s.mu.Unlock()
	if string(leader) == s.cfg.Name {
		s.becamePrimary()
	}
}

// coarseRole is the role known without asking anyone: raft state and suffrage.
func (s *statusReporter) coarseRole() wire.Role {
	switch s.raft.State() {
	case raft.Leader:
		return wire.RolePrimary
	case raft.Follower:
		if srv := raftServer(s.raft, s.cfg.Name); srv != nil {
			if srv.Suffrage == raft.Voter {
				return wire.RoleStandby
			}
			return wire.RoleAsync
		}
	}
	return wire.RoleUnsync
}

// stalledStatus turns this member's own status entry UNSYNC, with the reason of stall, the
// store's Stalled answer: whatever raft says, a stalled store applies nothing.
func stalledStatus(ms wire.MemberStatus, stall error) wire.MemberStatus {
	if stall == nil {
		return ms
	}
	ms.Role = wire.RoleUnsync
	ms.Reason = reasonOf(reason.Of(stall, reason.StorageFail))
	return ms
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
