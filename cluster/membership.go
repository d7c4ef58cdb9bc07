package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// catchUpPoll is how often AddMember and Promote ask a new member how far it has come.
const catchUpPoll = 50 * time.Millisecond

// Members returns the authorised members as this member's store has them.
func (c *Cluster) Members(ctx context.Context) ([]wire.Member, error) {
	ms, err := c.members()
	if err != nil {
		return nil, err
	}
	out := make([]wire.Member, len(ms))
	for i, m := range ms {
		out[i] = wireMember(m)
	}
	return out, nil
}

// members returns the member records of this member's store, for Members and the members
// RPC.
func (c *Cluster) members() ([]store.Member, error) {
	if c.closing.Load() {
		return nil, shutdownErr()
	}
	ms, err := c.st.Members()
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	return ms, nil
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

// AddMember authorises m's DN on the primary, then adds it to raft as a non-voter; a
// failover member (not Async) becomes a voter once it has caught up, so that a slow or
// broken newcomer never counts towards the quorum. Like every admin operation it runs on
// the primary only (adminOnPrimary).
func (c *Cluster) AddMember(ctx context.Context, m wire.Member) error {
	if m.Name == "" || m.MemberAddr == "" || m.DN == "" {
		return errors.New("add member: name, member address and DN are required")
	}
	return c.adminOnPrimary(func() error { return c.addMemberLocal(ctx, storeMember(m)) })
}

func (c *Cluster) addMemberLocal(ctx context.Context, m store.Member) error {
	if err := c.applyMember(ctx, store.OpSetMember, m); err != nil {
		return fmt.Errorf("authorise member %s: %w", m.Name, err)
	}
	f := c.raft.AddNonvoter(raft.ServerID(m.Name), raft.ServerAddress(m.MemberAddr), 0, c.cfg.ApplyTimeout)
	if err := c.waitFuture(ctx, f, "wait for raft"); err != nil {
		return fmt.Errorf("add member %s as non-voter: %w", m.Name, err)
	}
	if m.Async {
		return nil
	}
	return c.promoteWhenCaughtUp(ctx, m)
}

// Promote turns an async member into a failover member once it has caught up.
func (c *Cluster) Promote(ctx context.Context, name string) error {
	return c.adminOnPrimary(func() error { return c.promoteLocal(ctx, name) })
}

func (c *Cluster) promoteLocal(ctx context.Context, name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	m.Async = false
	return c.promoteWhenCaughtUp(ctx, m)
}

func (c *Cluster) promoteWhenCaughtUp(ctx context.Context, m store.Member) error {
	if err := c.waitCaughtUp(ctx, m); err != nil {
		return fmt.Errorf("wait for member %s to catch up: %w", m.Name, err)
	}
	f := c.raft.AddVoter(raft.ServerID(m.Name), raft.ServerAddress(m.MemberAddr), 0, c.cfg.ApplyTimeout)
	if err := c.waitFuture(ctx, f, "wait for raft"); err != nil {
		return fmt.Errorf("promote member %s to voter: %w", m.Name, err)
	}
	if err := c.applyMember(ctx, store.OpSetMember, m); err != nil {
		return fmt.Errorf("record member %s as failover: %w", m.Name, err)
	}
	return nil
}

// waitCaughtUp polls m's Self RPC until it trails the primary's last index by at most
// SyncLag entries, or has applied 95% of it.
func (c *Cluster) waitCaughtUp(ctx context.Context, m store.Member) error {
	tick := time.NewTicker(catchUpPoll)
	defer tick.Stop()
	for {
		if info, err := c.selfOf(ctx, m.Name, m.MemberAddr); err == nil && c.caughtUp(info, c.raft.LastIndex()) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return reason.Wrap(reason.CatchingUp, ctx.Err())
		case <-c.ctx.Done():
			return shutdownErr()
		}
	}
}

func (c *Cluster) caughtUp(info selfInfo, primaryLast uint64) bool {
	if info.Restoring || info.Applied == 0 {
		return primaryLast == 0
	}
	lag := primaryLast - min(info.Applied, primaryLast)
	return lag <= c.cfg.SyncLag || info.Applied*100 >= primaryLast*95
}

// RemoveMember takes name out of raft and then withdraws its authorisation, so that every
// member's channel drops it. The primary does not remove itself: it hands the primary role
// to another failover member first, and that one removes it.
func (c *Cluster) RemoveMember(ctx context.Context, name string) error {
	err := c.adminOnPrimary(func() error { return c.removeLocal(ctx, name) })
	if err != nil && reason.Of(err, reason.OK) == reason.Timeout && c.waitRemoved(ctx, name) {
		// The removed member asked, itself or through the old primary: withdrawing its
		// authorisation cut its conn before the answer came back. The removal is done.
		return nil
	}
	return err
}

// waitRemoved waits, up to ApplyTimeout, until this member sees name out of the raft
// configuration and, unless name is this member (which the group no longer updates), out
// of the authorised members.
func (c *Cluster) waitRemoved(ctx context.Context, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.closing.Load() {
			return false
		}
		if c.raftServer(name) == nil {
			if _, err := c.member(name); name == c.cfg.Name || err != nil {
				return true
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		case <-c.ctx.Done():
			return false
		}
	}
}

func (c *Cluster) removeLocal(ctx context.Context, name string) error {
	if name == c.cfg.Name {
		return c.removeSelf(ctx)
	}
	return c.removeMemberLocal(ctx, name)
}

func (c *Cluster) removeMemberLocal(ctx context.Context, name string) error {
	m, unknown := c.member(name)
	inRaft := c.raftServer(name) != nil
	if unknown != nil && !inRaft {
		return unknown
	}
	// Raft first: withdrawing the authorisation of a voter still in the configuration would
	// cut it off while it still counts towards the quorum.
	if inRaft {
		if err := c.waitFuture(ctx, c.raft.RemoveServer(raft.ServerID(name), 0, c.cfg.ApplyTimeout), "wait for raft"); err != nil {
			return fmt.Errorf("remove member %s from raft: %w", name, err)
		}
	}
	if unknown != nil {
		return nil // in raft only: nothing was authorised
	}
	if err := c.applyMember(ctx, store.OpRemoveMember, store.Member{Name: name, MemberAddr: m.MemberAddr, DN: m.DN}); err != nil {
		return fmt.Errorf("withdraw member %s: %w", name, err)
	}
	return nil
}

// removeSelf hands the primary role to another failover member and answers NotPrimary,
// naming it, so that the admin's client asks the new primary to remove this one (the client
// moves on to the next member on that answer). Withdrawing its own authorisation first, as
// the primary, would make the others cut it off before the configuration change that
// removes it could reach them.
func (c *Cluster) removeSelf(ctx context.Context) error {
	if !c.hasOtherVoter() {
		return fmt.Errorf("remove member %s: it is the only failover member; add and promote another first", c.cfg.Name)
	}
	if err := c.waitFuture(ctx, c.raft.LeadershipTransfer(), "wait for raft"); err != nil {
		return fmt.Errorf("hand over the primary role before removing %s: %w", c.cfg.Name, err)
	}
	p, err := c.waitLeader(ctx, c.cfg.Name)
	if err != nil {
		return err
	}
	if p.id == c.cfg.Name {
		return reason.Wrap(reason.NoPrimary, fmt.Errorf("remove member %s: no other member took over the primary role: %w", c.cfg.Name, ErrNoPrimary))
	}
	return c.adminElsewhere(p, fmt.Sprintf("%s handed the primary role to %s before its own removal", c.cfg.Name, p.id))
}

func (c *Cluster) hasOtherVoter() bool {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != c.cfg.Name {
			return true
		}
	}
	return false
}

// TransferLeadership hands the primary role to the voter named to, or to the most
// up-to-date voter when to is empty.
func (c *Cluster) TransferLeadership(ctx context.Context, to string) error {
	return c.adminOnPrimary(func() error { return c.transferLocal(ctx, to) })
}

func (c *Cluster) transferLocal(ctx context.Context, to string) error {
	if to == c.cfg.Name {
		return nil
	}
	var f raft.Future
	if to == "" {
		f = c.raft.LeadershipTransfer()
	} else {
		s := c.raftServer(to)
		if s == nil || s.Suffrage != raft.Voter {
			return reason.Wrap(reason.NotMember, fmt.Errorf("transfer leadership to %s: not a failover member: %w", to, ErrUnknownMember))
		}
		f = c.raft.LeadershipTransferToServer(s.ID, s.Address)
	}
	if err := c.waitFuture(ctx, f, "wait for raft"); err != nil {
		return fmt.Errorf("transfer leadership to %q: %w", to, err)
	}
	return nil
}

// adminOnPrimary runs an admin operation on the primary only. Elsewhere it refuses with
// reason.NotPrimary, naming the primary: an admin operation never travels over the member
// channel, where only a member's certificate would vouch for it (a client's certificate
// chain is public, so attaching it would prove nothing), and so it runs only where the
// admin's own certificate passed the TLS handshake and the API's access check.
func (c *Cluster) adminOnPrimary(local func() error) error {
	if c.closing.Load() {
		return shutdownErr()
	}
	if !c.isLeader() {
		addr, id := c.raft.LeaderWithID()
		return c.adminElsewhere(primary{addr: string(addr), id: string(id)}, "")
	}
	return local()
}

// PrimaryURL is the client URL of the primary as this member knows it, or "".
func (c *Cluster) PrimaryURL() string {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	m, err := c.member(string(id))
	if err != nil {
		return ""
	}
	return m.ClientURL
}

// adminElsewhere is the NotPrimary answer to an admin operation, naming the primary's
// client URL when this member knows it.
func (c *Cluster) adminElsewhere(p primary, why string) error {
	where := "no primary is known yet; retry shortly"
	if p.id != "" {
		where = "send it to the primary, " + p.id
		if m, err := c.member(p.id); err == nil && m.ClientURL != "" {
			where += " (" + m.ClientURL + ")"
		}
	}
	if why != "" {
		why += "; "
	}
	return reason.Wrap(reason.NotPrimary, &notPrimaryError{leader: p,
		err: fmt.Errorf("%smembership and leadership changes run on the primary only: %s: %w", why, where, ErrNotPrimary)})
}

func (c *Cluster) applyMember(ctx context.Context, op store.Op, m store.Member) error {
	res, err := c.applyLocal(ctx, store.EncodeCommand(store.Command{Op: op, Member: m}))
	if err != nil {
		return err
	}
	return res.Err
}

func (c *Cluster) member(name string) (store.Member, error) {
	ms, err := c.st.Members()
	if err != nil {
		return store.Member{}, fmt.Errorf("read members: %w", err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m, nil
		}
	}
	return store.Member{}, reason.Wrap(reason.NotMember, fmt.Errorf("member %q: %w", name, ErrUnknownMember))
}

func (c *Cluster) raftServer(name string) *raft.Server {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == name {
			return &s
		}
	}
	return nil
}

func (c *Cluster) markMembersDirty() {
	select {
	case c.membersDirty <- struct{}{}:
	default:
	}
}

// watchMembers feeds the authoriser the address → DN of every member whenever the
// membership may have changed.
func (c *Cluster) watchMembers() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.membersDirty:
			c.refreshAuth()
		}
	}
}

func (c *Cluster) refreshAuth() {
	ms, err := c.st.Members()
	if err != nil {
		c.log.Warn("read members for the member channel policy", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(ms) == 0 {
		ms = c.joined
	}
	m := map[string]string{c.cfg.Advertise: c.cfg.DN}
	for _, mem := range ms {
		m[mem.MemberAddr] = mem.DN
	}
	ids := identitiesOf(c.selfMember(), ms)
	c.idents.Store(&ids)
	if maps.Equal(m, c.lastAuth) {
		return
	}
	gone := c.lastAuth
	c.lastAuth = m
	c.auth.SetMembers(maps.Clone(m))
	// The authoriser cuts off the conns of peers it now refuses. Conns this member dialled
	// to an address no longer in the group are closed here too: raft would otherwise keep
	// them pooled for good, and with policy ca the authoriser cannot tell members apart.
	for addr := range gone {
		if _, ok := m[addr]; !ok {
			c.rpc.drop(addr)
			c.mux.closeTo(addr)
		}
	}
}

// join asks the Join addresses for the membership until one answers, so that this member
// authorises the existing ones before the primary contacts it.
func (c *Cluster) join() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, addr := range c.cfg.Join {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.StatusTimeout)
			p, err := c.rpc.call(ctx, addr, methodMembers, nil, true)
			cancel()
			if err == nil {
				if ms, err := decodeMembers(p); err == nil {
					c.mu.Lock()
					c.joined = ms
					c.mu.Unlock()
					c.markMembersDirty()
					return
				}
			}
			c.log.Debug("ask member for the membership", "addr", addr, "err", err)
		}
		select {
		case <-tick.C:
		case <-c.ctx.Done():
			return
		}
	}
}
