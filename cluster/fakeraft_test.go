package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// fakeRaft is one member's raft as the parts see it: the leader, the configuration and the
// indexes are what the test sets; a command applied on the leader goes straight into the
// member's store; every future completes at once.
type fakeRaft struct {
	st *memStore

	mu          sync.Mutex
	self        raft.ServerID
	state       raft.RaftState
	leader      raft.ServerID
	addr        raft.ServerAddress
	servers     []raft.Server
	term        uint64
	last        uint64
	commit      uint64
	verifyErr   error
	transferErr error    // what a leadership transfer fails with, as raft's when the target does not win
	changes     []string // configuration changes, transfers and member records applied, in order
}

func newFakeRaft(self string, st *memStore) *fakeRaft {
	return &fakeRaft{st: st, self: raft.ServerID(self), state: raft.Follower, term: 1}
}

// follow makes this member see leader (at addr) lead; leader may be this member.
func (r *fakeRaft) follow(leader, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leader, r.addr = raft.ServerID(leader), raft.ServerAddress(addr)
	r.state = raft.Follower
	if r.leader == r.self {
		r.state = raft.Leader
	}
}

func (r *fakeRaft) setServers(ss ...raft.Server) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers = ss
}

func (r *fakeRaft) changeLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

func (r *fakeRaft) State() raft.RaftState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func (r *fakeRaft) LeaderWithID() (raft.ServerAddress, raft.ServerID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr, r.leader
}

func (r *fakeRaft) CurrentTerm() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.term
}

func (r *fakeRaft) CommitIndex() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commit
}

func (r *fakeRaft) LastIndex() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *fakeRaft) LastContact() time.Time { return time.Now() }

func (r *fakeRaft) Apply(data []byte, _ time.Duration) raft.ApplyFuture {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != raft.Leader {
		return fakeFuture{err: raft.ErrNotLeader}
	}
	r.last++
	r.commit = r.last
	if cmd, err := store.DecodeCommand(data); err == nil && isMemberCommand(data) {
		r.changes = append(r.changes, map[store.Op]string{store.OpSetMember: "set member ", store.OpRemoveMember: "withdraw member "}[cmd.Op]+cmd.Member.Name)
	}
	p := &pendingResult{done: make(chan struct{}), res: r.st.ApplyBatch([]store.Entry{{Index: r.last, Data: data}})[0]}
	close(p.done)
	return fakeFuture{resp: p}
}

func (r *fakeRaft) VerifyLeader() raft.Future {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fakeFuture{err: r.verifyErr}
}

func (r *fakeRaft) GetConfiguration() raft.ConfigurationFuture {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fakeFuture{conf: raft.Configuration{Servers: slices.Clone(r.servers)}}
}

func (r *fakeRaft) AddVoter(id raft.ServerID, addr raft.ServerAddress, _ uint64, _ time.Duration) raft.IndexFuture {
	return r.setServer(raft.Server{Suffrage: raft.Voter, ID: id, Address: addr}, "add voter ")
}

func (r *fakeRaft) AddNonvoter(id raft.ServerID, addr raft.ServerAddress, _ uint64, _ time.Duration) raft.IndexFuture {
	return r.setServer(raft.Server{Suffrage: raft.Nonvoter, ID: id, Address: addr}, "add non-voter ")
}

func (r *fakeRaft) setServer(s raft.Server, what string) raft.IndexFuture {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != raft.Leader {
		return fakeFuture{err: raft.ErrNotLeader}
	}
	r.changes = append(r.changes, what+string(s.ID))
	r.servers = slices.DeleteFunc(r.servers, func(o raft.Server) bool { return o.ID == s.ID })
	r.servers = append(r.servers, s)
	return fakeFuture{}
}

func (r *fakeRaft) RemoveServer(id raft.ServerID, _ uint64, _ time.Duration) raft.IndexFuture {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != raft.Leader {
		return fakeFuture{err: raft.ErrNotLeader}
	}
	r.changes = append(r.changes, "remove "+string(id))
	r.servers = slices.DeleteFunc(r.servers, func(o raft.Server) bool { return o.ID == id })
	return fakeFuture{}
}

func (r *fakeRaft) LeadershipTransfer() raft.Future { return r.LeadershipTransferToServer("", "") }

func (r *fakeRaft) LeadershipTransferToServer(id raft.ServerID, _ raft.ServerAddress) raft.Future {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != raft.Leader {
		return fakeFuture{err: raft.ErrNotLeader}
	}
	r.changes = append(r.changes, "transfer to "+string(id))
	return fakeFuture{err: r.transferErr}
}

// fakeFuture is every kind of raft future, complete from the start.
type fakeFuture struct {
	err  error
	conf raft.Configuration
	resp any
}

func (f fakeFuture) Error() error                      { return f.err }
func (f fakeFuture) Index() uint64                     { return 0 }
func (f fakeFuture) Configuration() raft.Configuration { return f.conf }
func (f fakeFuture) Response() any                     { return f.resp }

// fakeChannel is the member channel as the parts use it: each address answers with the
// forwarder or status of the member there, and an error crosses it encoded as on the wire.
type fakeChannel struct {
	mu      sync.Mutex
	members map[string]*fakeMember
	down    map[string]bool // unreachable: a request to it is never sent
	sent    []string        // addresses called, in order
}

func newFakeChannel() *fakeChannel {
	return &fakeChannel{members: map[string]*fakeMember{}, down: map[string]bool{}}
}

var errUnreachable = errors.New("unreachable in this test")

func (ch *fakeChannel) call(ctx context.Context, addr string, method byte, payload []byte, _ bool) ([]byte, error) {
	ch.mu.Lock()
	ch.sent = append(ch.sent, addr)
	m, down := ch.members[addr], ch.down[addr]
	ch.mu.Unlock()
	if m == nil || down {
		return nil, &callError{Addr: addr, Err: errUnreachable}
	}
	var resp []byte
	var err error
	switch method {
	case methodSelf:
		resp = encodeSelf(m.rep.self())
	case methodApply, methodReadIndex:
		resp, err = m.fwd.serve(ctx, method, payload)
	default:
		err = ErrNotAllowed
	}
	if err != nil {
		return nil, decodeRemoteError(encodeError(err))
	}
	return resp, nil
}

func (ch *fakeChannel) setDown(addr string, down bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.down[addr] = down
}

func (ch *fakeChannel) sentTo() []string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return slices.Clone(ch.sent)
}

// lead makes every member see name lead.
func (ch *fakeChannel) lead(name string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, m := range ch.members {
		m.raft.follow(name, addrOf(name))
	}
}

// fakeMember is one member's parts over a fakeRaft, on a fakeChannel.
type fakeMember struct {
	name string
	cfg  Config
	st   *memStore
	raft *fakeRaft
	fsm  *fsm
	fwd  *forwarder
	rep  *statusReporter
	mem  *membership
	auth *recordingAuth
	life *life
}

func addrOf(name string) string { return name + ".test:7000" }

// newFakeMember builds the parts of member name over a fakeRaft and joins them to ch. Its
// life ends, and its FSM closes, at the end of tb.
func newFakeMember(tb testing.TB, ch *fakeChannel, name string) *fakeMember {
	cfg := Config{Name: name, Advertise: addrOf(name), DN: "CN=" + name, ClientURL: "https://" + name,
		GroupID: "test"}.withDefaults()
	m := &fakeMember{name: name, cfg: cfg, st: newMemStore(), life: newLife(), auth: &recordingAuth{}}
	m.raft = newFakeRaft(name, m.st)
	m.fsm = newFSM(m.st, isMemberCommand, func() {})
	tb.Cleanup(func() {
		m.life.end()
		m.fwd.reads.close()
		m.fsm.close()
	})
	m.fwd = newForwarder(cfg, m.raft, m.st, readyWaiter{}, ch, m.life, testMetrics())
	m.rep = &statusReporter{cfg: cfg, raft: m.raft, fsm: m.fsm, st: m.st, rpc: ch, life: m.life,
		leaderChanges: testMetrics().leaderChanges, flush: func() {}, becamePrimary: func() {},
		role: wire.RoleUnsync, prevRole: wire.RoleUnsync}
	var idents atomic.Pointer[identities]
	m.mem = &membership{cfg: cfg, log: testLogger(tb), raft: m.raft, st: m.st, fwd: m.fwd, peers: m.rep,
		rpc: ch, auth: m.auth, life: m.life, idents: &idents, dirty: make(chan struct{}, 1),
		drop: func(string) {}}
	ch.mu.Lock()
	ch.members[cfg.Advertise] = m
	ch.mu.Unlock()
	return m
}

// record stores mem as if the group had applied its member record.
func (m *fakeMember) record(mem store.Member) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	m.st.Mems[mem.Name] = mem
}

func memberOf(name string, async bool) store.Member {
	return store.Member{Name: name, MemberAddr: addrOf(name), ClientURL: "https://" + name, DN: "CN=" + name, Async: async}
}

// readyWaiter is a store that has applied every index already.
type readyWaiter struct{}

func (readyWaiter) waitApplied(context.Context, uint64) error { return nil }

// recordingAuth is an Authoriser that keeps the last member set.
type recordingAuth struct {
	mu      sync.Mutex
	members map[string]string
}

func (a *recordingAuth) SetMembers(m map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.members = m
}

func (a *recordingAuth) get() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.members
}

func testMetrics() *metrics {
	return &metrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "leader_changes"}),
		forwarded:     prometheus.NewCounter(prometheus.CounterOpts{Name: "forwarded"}),
		readRounds:    prometheus.NewCounter(prometheus.CounterOpts{Name: "read_rounds"}),
		readsPerRound: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "reads_per_round"}),
	}
}
