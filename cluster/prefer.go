package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// preferPoll is how often the primary looks at the preferred member.
const preferPoll = 250 * time.Millisecond

// preferHoldDownCap is the most the hold-down doubles to: 2^4 = 16 times.
const preferHoldDownCap = 4

// prefer makes name the preferred primary, or withdraws the preference when name is empty.
// The preference is a replicated member record field (store.OpSetPreferred), so every
// member, and every primary to come, knows it. It runs on the primary only.
func (m *membership) prefer(ctx context.Context, name string) error {
	return m.adminOnPrimary(func() error {
		ms, err := m.st.Members()
		if err != nil {
			return fmt.Errorf("read members: %w", err)
		}
		old, _ := store.Preferred(ms)
		if name != "" {
			if _, err := memberNamed(m.st, name); err != nil {
				return err
			}
			if s := raftServer(m.raft, name); s == nil || s.Suffrage != raft.Voter {
				return reason.Wrap(reason.PreferredNotFailover, fmt.Errorf("prefer %s: not a failover member; promote it first (mirrorkv member promote %s): %w", name, name, ErrUnknownMember))
			}
		}
		cmd := store.Command{Op: store.OpSetPreferred, Key: old.Name, Member: store.Member{Name: name}}
		res, err := m.fwd.applyLocal(ctx, store.EncodeCommand(cmd))
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return fmt.Errorf("prefer member %q: %w", name, err)
		}
		return nil
	})
}

// preferRaft is what the preference loop asks of raft.
type preferRaft interface {
	leaderView
	configView
	LastIndex() uint64
}

// preferrer runs on every member and acts on the primary only: when the preferred member
// is a failover member that has been in sync for the whole hold-down, and this primary has
// held the role for the hold-down too, it hands the role over (a raft leadership transfer).
// The hold-down doubles with each change of primary seen within ten hold-downs, so a flaky
// link to the preferred member cannot make the role flap; when the preferred member is not
// in sync any failover member leads, as without a preference.
type preferrer struct {
	cfg      Config
	log      *slog.Logger
	raft     preferRaft
	st       memberLister
	peers    selfAsker
	life     *life
	transfer func(ctx context.Context, to string) error

	leader       raft.ServerID
	leaderSince  time.Time   // when this member last saw the primary change
	changes      []time.Time // changes of primary seen, within ten hold-downs
	healthySince time.Time   // the preferred member in sync at every look since; zero: not
}

func (p *preferrer) run() {
	tick := time.NewTicker(preferPoll)
	defer tick.Stop()
	for {
		select {
		case <-p.life.ctx.Done():
			return
		case <-tick.C:
			p.step(p.life.ctx, time.Now())
		}
	}
}

// step looks once: it notes a change of primary and, on the primary, moves the role to the
// preferred member when the hold-down allows.
func (p *preferrer) step(ctx context.Context, now time.Time) {
	if _, id := p.raft.LeaderWithID(); id != p.leader {
		p.leader, p.leaderSince, p.healthySince = id, now, time.Time{}
		if id != "" {
			p.changes = append(p.changes, now)
		}
	}
	to, ok := p.candidate(ctx)
	if !ok {
		p.healthySince = time.Time{}
		return
	}
	if p.healthySince.IsZero() {
		p.healthySince = now
	}
	hold := p.holdDown(now)
	if now.Sub(p.healthySince) < hold || now.Sub(p.leaderSince) < hold {
		return
	}
	p.log.Info("handing the primary role to the preferred member", "to", to.Name, "hold_down", hold)
	if err := p.transfer(ctx, to.Name); err != nil {
		p.log.Warn("hand the primary role to the preferred member", "to", to.Name, "err", err)
		p.leaderSince, p.healthySince = now, time.Time{} // try again after another hold-down
	}
}

// candidate is the preferred member when this member is the primary, another member is
// preferred, and that one is a failover member in sync.
func (p *preferrer) candidate(ctx context.Context) (store.Member, bool) {
	if p.raft.State() != raft.Leader {
		return store.Member{}, false
	}
	ms, err := p.st.Members()
	if err != nil {
		return store.Member{}, false
	}
	to, ok := store.Preferred(ms)
	if !ok || to.Name == p.cfg.Name {
		return store.Member{}, false
	}
	if s := raftServer(p.raft, to.Name); s == nil || s.Suffrage != raft.Voter {
		return store.Member{}, false
	}
	info, err := p.peers.selfOf(ctx, to.Name, to.MemberAddr)
	if err != nil || info.State != raft.Follower || !caughtUp(info, p.raft.LastIndex(), p.cfg.SyncLag) {
		return store.Member{}, false
	}
	return to, true
}

// holdDown is PreferHoldDown doubled for each change of primary beyond the first within
// the last ten hold-downs, at most preferHoldDownCap times.
func (p *preferrer) holdDown(now time.Time) time.Duration {
	window := 10 * p.cfg.PreferHoldDown
	recent := p.changes[:0]
	for _, t := range p.changes {
		if now.Sub(t) < window {
			recent = append(recent, t)
		}
	}
	p.changes = recent
	n := min(max(len(recent)-1, 0), preferHoldDownCap)
	return p.cfg.PreferHoldDown << n
}

// preferStatus is the preference and whether it is in force, judged from the members'
// entries of the status: OK when the preferred member is the primary, PreferredPending when
// it is a standby in sync (the primary hands it the role after the hold-down),
// PreferredNotFailover when it cannot lead, and PreferredUnavailable otherwise.
func preferStatus(ms []store.Member, members []wire.MemberStatus) (string, *wire.Reason) {
	pref, ok := store.Preferred(ms)
	if !ok {
		return "", nil
	}
	code := reason.PreferredUnavailable
	for _, m := range members {
		if m.Name != pref.Name {
			continue
		}
		switch {
		case m.Role == wire.RolePrimary:
			code = reason.OK
		case !m.Voter:
			code = reason.PreferredNotFailover
		case m.Role == wire.RoleStandby:
			code = reason.PreferredPending
		}
	}
	r := reasonOf(code)
	return pref.Name, &r
}
