package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// catchUpPoll is how often AddMember and Promote ask a new member how far it has come.
const catchUpPoll = 50 * time.Millisecond

// membership changes the group on the primary (add, promote, remove, transfer), feeds the
// authoriser and the raft gate the current members, and asks the join addresses for the
// membership at start.
type membership struct {
	cfg    Config
	log    *slog.Logger
	raft   membershipRaft
	st     joinStore
	fwd    primaryApplier
	peers  selfAsker
	rpc    memberCaller
	auth   Authoriser
	life   *life
	idents *atomic.Pointer[identities] // read by the raft gate's check
	dirty  chan struct{}               // a membership change may have been applied
	drop   func(addr string)           // closes this member's conns dialled to addr

	mu       sync.Mutex
	joined   []store.Member // membership learnt from join, until the store is as new (withJoined)
	joinedAt uint64         // the raft index the joined list reflects; 0: not told
	lastAuth map[string]string
}

// primaryApplier is what membership asks of forwarding: applying a member record on this
// member, the primary, and waiting for another primary.
type primaryApplier interface {
	applyLocal(ctx context.Context, data []byte) (store.Result, error)
	waitLeader(ctx context.Context, avoid string) (primary, error)
}

// selfAsker asks a member for its own view.
type selfAsker interface {
	selfOf(ctx context.Context, name, addr string) (selfInfo, error)
}

// list returns the authorised members as this member's store has them.
func (m *membership) list() ([]wire.Member, error) {
	ms, err := m.members()
	if err != nil {
		return nil, err
	}
	out := make([]wire.Member, len(ms))
	for i, mem := range ms {
		out[i] = wireMember(mem)
	}
	return out, nil
}

// members returns the member records of this member's store, for Members and the members
// RPC.
func (m *membership) members() ([]store.Member, error) {
	if m.life.closing.Load() {
		return nil, shutdownErr()
	}
	ms, err := m.st.Members()
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	return ms, nil
}

// membersAt is members with the raft index the list reflects, for a joining member.
func (m *membership) membersAt() ([]store.Member, uint64, error) {
	if m.life.closing.Load() {
		return nil, 0, shutdownErr()
	}
	ms, applied, err := m.st.MembersAt()
	if err != nil {
		return nil, 0, fmt.Errorf("read members: %w", err)
	}
	return ms, applied, nil
}

// wireMember is the API's form of a member record. The cluster keeps members as the store
// records them (store.Member); the two types meet only here and in storeMember, so that the
// HTTP API and the replicated formats can change apart.
func wireMember(m store.Member) wire.Member {
	return wire.Member{Name: m.Name, MemberAddr: m.MemberAddr, ClientURL: m.ClientURL, DN: m.DN, Async: m.Async}
}

// storeMember is the record of a member the API names.
func storeMember(m wire.Member) store.Member {
	return store.Member{Name: m.Name, MemberAddr: m.MemberAddr, ClientURL: m.ClientURL, DN: m.DN, Async: m.Async}
}

// add authorises w's DN on the primary, then adds it to raft as a non-voter; a
// failover member (not Async) becomes a voter once it has caught up, so that a slow or
// broken newcomer never counts towards the quorum. Like every admin operation it runs on
// the primary only (adminOnPrimary).
func (m *membership) add(ctx context.Context, w wire.Member) error {
	if w.Name == "" || w.MemberAddr == "" || w.DN == "" {
		return errors.New("add member: name, member address and DN are required")
	}
	return m.adminOnPrimary(func() error { return m.addLocal(ctx, storeMember(w)) })
}

func (m *membership) addLocal(ctx context.Context, mem store.Member) error {
	if err := m.applyMember(ctx, store.OpSetMember, mem); err != nil {
		return fmt.Errorf("authorise member %s: %w", mem.Name, err)
	}
	f := m.raft.AddNonvoter(raft.ServerID(mem.Name), raft.ServerAddress(mem.MemberAddr), 0, m.cfg.ApplyTimeout)
	if err := m.life.waitFuture(ctx, f, "wait for raft"); err != nil {
		return fmt.Errorf("add member %s as non-voter: %w", mem.Name, err)
	}
	if mem.Async {
		return nil
	}
	return m.promoteWhenCaughtUp(ctx, mem)
}

// promote turns an async member into a failover member once it has caught up.
func (m *membership) promote(ctx context.Context, name string) error {
	return m.adminOnPrimary(func() error { return m.promoteLocal(ctx, name) })
}

func (m *membership) promoteLocal(ctx context.Context, name string) error {
	mem, err := memberNamed(m.st, name)
	if err != nil {
		return err
	}
	mem.Async = false
	return m.promoteWhenCaughtUp(ctx, mem)
}

func (m *membership) promoteWhenCaughtUp(ctx context.Context, mem store.Member) error {
	if err := m.waitCaughtUp(ctx, mem); err != nil {
		return fmt.Errorf("wait for member %s to catch up: %w", mem.Name, err)
	}
	f := m.raft.AddVoter(raft.ServerID(mem.Name), raft.ServerAddress(mem.MemberAddr), 0, m.cfg.ApplyTimeout)
	if err := m.life.waitFuture(ctx, f, "wait for raft"); err != nil {
		return fmt.Errorf("promote member %s to voter: %w", mem.Name, err)
	}
	if err := m.applyMember(ctx, store.OpSetMember, mem); err != nil {
		return fmt.Errorf("record member %s as failover: %w", mem.Name, err)
	}
	return nil
}

// waitCaughtUp polls m's Self RPC until it trails the primary's last index by at most
// SyncLag entries, or has applied 95% of it.
func (m *membership) waitCaughtUp(ctx context.Context, mem store.Member) error {
	tick := time.NewTicker(catchUpPoll)
	defer tick.Stop()
	for {
		if info, err := m.peers.selfOf(ctx, mem.Name, mem.MemberAddr); err == nil && caughtUp(info, m.raft.LastIndex(), m.cfg.SyncLag) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return reason.Wrap(reason.CatchingUp, ctx.Err())
		case <-m.life.ctx.Done():
			return shutdownErr()
		}
	}
}

// caughtUp reports whether a member whose own view is info is in sync with a primary whose
// last index is primaryLast.
func caughtUp(info selfInfo, primaryLast, syncLag uint64) bool {
	if info.Restoring || info.Applied == 0 {
		return primaryLast == 0
	}
	lag := primaryLast - min(info.Applied, primaryLast)
	return lag <= syncLag || info.Applied*100 >= primaryLast*95
}

// remove takes name out of raft and then withdraws its authorisation, so that every
// member's channel drops it. The primary does not remove itself: it hands the primary role
// to another failover member first, and that one removes it.
func (m *membership) remove(ctx context.Context, name string) error {
	err := m.adminOnPrimary(func() error { return m.removeLocal(ctx, name) })
	if err != nil && reason.Of(err, reason.OK) == reason.Timeout && m.waitRemoved(ctx, name) {
		// The removed member asked, itself or through the old primary: withdrawing its
		// authorisation cut its conn before the answer came back. The removal is done.
		return nil
	}
	return err
}

// waitRemoved waits, up to ApplyTimeout, until this member sees name out of the raft
// configuration and, unless name is this member (which the group no longer updates), out
// of the authorised members.
func (m *membership) waitRemoved(ctx context.Context, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ApplyTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.life.closing.Load() {
			return false
		}
		if raftServer(m.raft, name) == nil {
			if _, err := memberNamed(m.st, name); name == m.cfg.Name || err != nil {
				return true
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		case <-m.life.ctx.Done():
			return false
		}
	}
}

func (m *membership) removeLocal(ctx context.Context, name string) error {
	if name == m.cfg.Name {
		return m.removeSelf(ctx)
	}
	return m.removeOtherLocal(ctx, name)
}

func (m *membership) removeOtherLocal(ctx context.Context, name string) error {
	mem, unknown := memberNamed(m.st, name)
	inRaft := raftServer(m.raft, name) != nil
	if unknown != nil && !inRaft {
		return unknown
	}
	// Raft first: withdrawing the authorisation of a voter still in the configuration would
	// cut it off while it still counts towards the quorum.
	if inRaft {
		if err := m.life.waitFuture(ctx, m.raft.RemoveServer(raft.ServerID(name), 0, m.cfg.ApplyTimeout), "wait for raft"); err != nil {
			return fmt.Errorf("remove member %s from raft: %w", name, err)
		}
	}
	if unknown != nil {
		return nil // in raft only: nothing was authorised
	}
	if err := m.applyMember(ctx, store.OpRemoveMember, store.Member{Name: name, MemberAddr: mem.MemberAddr, DN: mem.DN}); err != nil {
		return fmt.Errorf("withdraw member %s: %w", name, err)
	}
	return nil
}

// removeSelf hands the primary role to another failover member and answers NotPrimary,
// naming it, so that the admin's client asks the new primary to remove this one (the client
// moves on to the next member on that answer). Withdrawing its own authorisation first, as
// the primary, would make the others cut it off before the configuration change that
// removes it could reach them.
func (m *membership) removeSelf(ctx context.Context) error {
	if !m.hasOtherVoter() {
		return fmt.Errorf("remove member %s: it is the only failover member; add and promote another first", m.cfg.Name)
	}
	if err := m.life.waitFuture(ctx, m.raft.LeadershipTransfer(), "wait for raft"); err != nil {
		return fmt.Errorf("hand over the primary role before removing %s: %w", m.cfg.Name, err)
	}
	p, err := m.fwd.waitLeader(ctx, m.cfg.Name)
	if err != nil {
		return err
	}
	if p.id == m.cfg.Name {
		return reason.Wrap(reason.NoPrimary, fmt.Errorf("remove member %s: no other member took over the primary role: %w", m.cfg.Name, ErrNoPrimary))
	}
	return m.adminElsewhere(p, fmt.Sprintf("%s handed the primary role to %s before its own removal", m.cfg.Name, p.id))
}

func (m *membership) hasOtherVoter() bool {
	f := m.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != m.cfg.Name {
			return true
		}
	}
	return false
}

// transfer hands the primary role to the voter named to, or to the most up-to-date voter
// when to is empty.
func (m *membership) transfer(ctx context.Context, to string) error {
	return m.adminOnPrimary(func() error { return m.transferLocal(ctx, to) })
}

func (m *membership) transferLocal(ctx context.Context, to string) error {
	if to == m.cfg.Name {
		return nil
	}
	var f raft.Future
	if to == "" {
		f = m.raft.LeadershipTransfer()
	} else {
		s := raftServer(m.raft, to)
		if s == nil || s.Suffrage != raft.Voter {
			return reason.Wrap(reason.NotMember, fmt.Errorf("transfer leadership to %s: not a failover member: %w", to, ErrUnknownMember))
		}
		f = m.raft.LeadershipTransferToServer(s.ID, s.Address)
	}
	if err := m.life.waitFuture(ctx, f, "wait for raft"); err != nil {
		if _, coded := errors.AsType[*reason.Error](err); !coded {
			// raft gives up when the target has not won an election in time (its error,
			// "leadership transfer timeout", has no value to test for); this member stays
			// the primary, and the transfer may be asked again.
			err = reason.Wrap(reason.Timeout, fmt.Errorf("%w; check that %s is up and in sync (mirrorkv status), then ask again", err, orAny(to)))
		}
		return fmt.Errorf("transfer leadership to %q: %w", to, err)
	}
	return nil
}

func orAny(to string) string {
	if to == "" {
		return "another failover member"
	}
	return to
}

// adminOnPrimary runs an admin operation on the primary only. Elsewhere it refuses with
// reason.NotPrimary, naming the primary: an admin operation never travels over the member
// channel, where only a member's certificate would vouch for it (a client's certificate
// chain is public, so attaching it would prove nothing), and so it runs only where the
// admin's own certificate passed the TLS handshake and the API's access check.
func (m *membership) adminOnPrimary(local func() error) error {
	if m.life.closing.Load() {
		return shutdownErr()
	}
	if m.raft.State() != raft.Leader {
		addr, id := m.raft.LeaderWithID()
		return m.adminElsewhere(primary{addr: string(addr), id: string(id)}, "")
	}
	return local()
}

// primaryURL is the client URL of the primary as this member knows it, or "".
func (m *membership) primaryURL() string {
	_, id := m.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	mem, err := memberNamed(m.st, string(id))
	if err != nil {
		return ""
	}
	return mem.ClientURL
}

// adminElsewhere is the NotPrimary answer to an admin operation, naming the primary's
// client URL when this member knows it.
func (m *membership) adminElsewhere(p primary, why string) error {
	where := "no primary is known yet; retry shortly"
	if p.id != "" {
		where = "send it to the primary, " + p.id
		if mem, err := memberNamed(m.st, p.id); err == nil && mem.ClientURL != "" {
			where += " (" + mem.ClientURL + ")"
		}
	}
	if why != "" {
		why += "; "
	}
	return reason.Wrap(reason.NotPrimary, &notPrimaryError{leader: p,
		err: fmt.Errorf("%smembership and leadership changes run on the primary only: %s: %w", why, where, ErrNotPrimary)})
}

func (m *membership) applyMember(ctx context.Context, op store.Op, mem store.Member) error {
	res, err := m.fwd.applyLocal(ctx, store.EncodeCommand(store.Command{Op: op, Member: mem}))
	if err != nil {
		return err
	}
	return res.Err
}

// memberNamed is name's record in the store, or an error coded reason.NotMember.
func memberNamed(st memberLister, name string) (store.Member, error) {
	ms, err := st.Members()
	if err != nil {
		return store.Member{}, fmt.Errorf("read members: %w", err)
	}
	for _, mem := range ms {
		if mem.Name == name {
			return mem, nil
		}
	}
	return store.Member{}, reason.Wrap(reason.NotMember, fmt.Errorf("member %q: %w", name, ErrUnknownMember))
}

// signal wakes the one goroutine that waits on ch, once however often it is called before
// that one runs; it never blocks, so that the FSM may call it.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// watchMembers feeds the authoriser the address → DN of every member whenever the
// membership may have changed.
func (m *membership) watchMembers() {
	// While the list learnt at join is in force, nothing may be applied that changes the
	// membership, and yet the store's own list must take over once the store is as new.
	tick := time.NewTicker(joinedPoll)
	defer tick.Stop()
	for {
		select {
		case <-m.life.ctx.Done():
			return
		case <-m.dirty:
			m.refreshAuth()
		case <-tick.C:
			if m.joining() {
				m.refreshAuth()
			}
		}
	}
}

// joinedPoll is how often a member that joined checks whether its store has caught up with
// the membership it learnt at join.
const joinedPoll = 250 * time.Millisecond

func (m *membership) joining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.joined != nil
}

// withJoined returns the members the policy authorises: the store's, and while the store is
// older than the list learnt at join, that list's too. A member wiped and joined again may
// first restore a snapshot taken before the primary it joins through was added (bug 9 in
// docs/reliability.md); refusing that primary would stop the store from ever catching up.
// Once the store has applied the index the join answer reflects, its own list is the newer
// one and alone is in force, so that a member removed since is not kept authorised. An
// answer without an index, from an older release, counts only while the store has no
// members. m.mu must be held.
func (m *membership) withJoined(ms []store.Member) []store.Member {
	if m.joined == nil {
		return ms
	}
	if len(ms) > 0 && m.st.AppliedIndex() >= m.joinedAt {
		m.joined = nil
		return ms
	}
	out := slices.Clone(m.joined)
	for _, mem := range ms {
		if !slices.ContainsFunc(out, func(j store.Member) bool { return j.Name == mem.Name }) {
			out = append(out, mem)
		}
	}
	return out
}

func (m *membership) refreshAuth() {
	ms, err := m.st.Members()
	if err != nil {
		m.log.Warn("read members for the member channel policy", "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms = m.withJoined(ms)
	dns := map[string]string{m.cfg.Advertise: m.cfg.DN}
	for _, mem := range ms {
		dns[mem.MemberAddr] = mem.DN
	}
	ids := identitiesOf(selfMember(m.cfg), ms)
	m.idents.Store(&ids)
	if maps.Equal(dns, m.lastAuth) {
		return
	}
	gone := m.lastAuth
	m.lastAuth = dns
	m.auth.SetMembers(maps.Clone(dns))
	// The authoriser cuts off the conns of peers it now refuses. Conns this member dialled
	// to an address no longer in the group are closed here too: raft would otherwise keep
	// them pooled for good, and with policy ca the authoriser cannot tell members apart.
	for addr := range gone {
		if _, ok := dns[addr]; !ok {
			m.drop(addr)
		}
	}
}

// join asks the Join addresses for the membership until one answers, so that this member
// authorises the existing ones before the primary contacts it.
func (m *membership) join() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, addr := range m.cfg.Join {
			ctx, cancel := context.WithTimeout(m.life.ctx, m.cfg.StatusTimeout)
			p, err := m.rpc.call(ctx, addr, methodMembers, membersAtRequest, true)
			cancel()
			if err == nil {
				if ms, applied, err := decodeMembersAt(p); err == nil {
					m.mu.Lock()
					m.joined, m.joinedAt = ms, applied
					m.mu.Unlock()
					signal(m.dirty)
					return
				}
			}
			m.log.Debug("ask member for the membership", "addr", addr, "err", err)
		}
		select {
		case <-tick.C:
		case <-m.life.ctx.Done():
			return
		}
	}
}
