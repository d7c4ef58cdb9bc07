package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/store"
)

// memStore is an in-memory StateMachine. Kept across a member's restart, it stands for an
// on-disk store.
type memStore struct {
	mu      sync.Mutex
	Applied uint64
	Rev     int64
	KVs     map[string]store.KV
	Mems    map[string]store.Member

	// stall, while set, holds ApplyBatch back as a full disk holds the real store's, and
	// is what Stalled reports; a test sets it with setStall and clears it with clearStall.
	stall   atomic.Pointer[memStall]
	blocked atomic.Pointer[error]
}

type memStall struct {
	err     error
	cleared chan struct{}
}

// setStall makes ApplyBatch wait, and Stalled report err, until clearStall.
func (s *memStore) setStall(err error) {
	s.stall.Store(&memStall{err: err, cleared: make(chan struct{})})
}

func (s *memStore) clearStall() {
	if st := s.stall.Swap(nil); st != nil {
		close(st.cleared)
	}
}

// Stalled reports the stall's error: set once an ApplyBatch is held back, as the real
// store reports a stall only once a commit failed.
func (s *memStore) Stalled() error {
	if p := s.blocked.Load(); p != nil {
		return *p
	}
	return nil
}

func newMemStore() *memStore {
	return &memStore{KVs: map[string]store.KV{}, Mems: map[string]store.Member{}}
}

func (s *memStore) ApplyBatch(entries []store.Entry) []store.Result {
	if st := s.stall.Load(); st != nil {
		s.blocked.Store(&st.err)
		<-st.cleared
		s.blocked.Store(nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Result, len(entries))
	for i, e := range entries {
		if e.Index <= s.Applied {
			continue
		}
		s.Applied = e.Index
		cmd, err := store.DecodeCommand(e.Data)
		if err != nil {
			out[i] = store.Result{Revision: s.Rev, Err: err}
			continue
		}
		out[i] = s.apply(cmd)
	}
	return out
}

func (s *memStore) apply(cmd store.Command) store.Result {
	cur, ok := s.KVs[cmd.Key]
	if cmd.HasIf && cur.Revision != cmd.IfRevision {
		return store.Result{Revision: s.Rev, Err: &store.PreconditionError{Key: cmd.Key, Want: cmd.IfRevision, Current: cur.Revision}}
	}
	switch cmd.Op {
	case store.OpPut:
		s.Rev++
		created := cur.Created
		if !ok {
			created = s.Rev
		}
		s.KVs[cmd.Key] = store.KV{Key: cmd.Key, Value: cmd.Value, Revision: s.Rev, Created: created}
	case store.OpDelete:
		if !ok {
			return store.Result{Revision: s.Rev, Err: store.ErrNotFound}
		}
		s.Rev++
		delete(s.KVs, cmd.Key)
	case store.OpSetMember:
		s.Mems[cmd.Member.Name] = cmd.Member
	case store.OpRemoveMember:
		delete(s.Mems, cmd.Member.Name)
	case store.OpSetPreferred:
		if m, ok := s.Mems[cmd.Key]; ok {
			m.PreferredIndex = 0
			s.Mems[cmd.Key] = m
		}
		m, ok := s.Mems[cmd.Member.Name]
		if cmd.Member.Name != "" && !ok {
			return store.Result{Revision: s.Rev, Err: store.ErrNotFound}
		}
		if ok {
			m.PreferredIndex = s.Applied
			s.Mems[cmd.Member.Name] = m
		}
	case store.OpTxn:
		return s.applyTxn(cmd.Txn)
	}
	return store.Result{Revision: s.Rev}
}

// applyTxn runs the Then branch whatever the compares say: the cluster carries a txn and
// its result, and the store's own tests check how it is evaluated.
func (s *memStore) applyTxn(t *store.Txn) store.Result {
	res := &store.TxnResult{Succeeded: true, Ops: make([]store.OpResult, len(t.Then))}
	rev := s.Rev + 1
	for i, o := range t.Then {
		cur, ok := s.KVs[o.Key]
		switch {
		case o.Op == store.OpPut:
			created := cur.Created
			if !ok {
				created = rev
			}
			s.KVs[o.Key] = store.KV{Key: o.Key, Value: o.Value, Revision: rev, Created: created}
		case ok:
			delete(s.KVs, o.Key)
		default:
			continue
		}
		res.Ops[i].Revision = rev
		s.Rev = rev
	}
	return store.Result{Revision: s.Rev, Txn: res}
}

func (s *memStore) AppliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Applied
}

func (s *memStore) get(key string) (store.KV, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.KVs[key]
	return kv, ok
}

type memSnapshot struct{ data []byte }

func (m memSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(m.data)
	return int64(n), err
}
func (memSnapshot) Release() {}

func (s *memStore) Snapshot() (store.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(s)
	return memSnapshot{b}, err
}

func (s *memStore) Restore(r io.Reader) error {
	var n memStore
	if err := json.NewDecoder(r).Decode(&n); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Applied, s.Rev, s.KVs, s.Mems = n.Applied, n.Rev, n.KVs, n.Mems
	return nil
}

func (s *memStore) Members() ([]store.Member, error) {
	ms, _, err := s.MembersAt()
	return ms, err
}

func (s *memStore) MembersAt() ([]store.Member, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Member, 0, len(s.Mems))
	for _, m := range s.Mems {
		out = append(out, m)
	}
	return out, s.Applied, nil
}

// testNet is plain TCP on 127.0.0.1 standing in for the mtls member channel with policy dn,
// names instead of certificates: the dialler sends its DN; the acceptor refuses it unless
// its authoriser lists that DN, else answers with an ack and its own DN, which the dialler
// checks in turn against the address it dialled. A refusal is therefore a dial error, as
// with mtls's ack byte. Every conn is tracked with its peer's DN, and a new member set
// closes the conns of peers it no longer authorises. A test can also cut the member off.
type testNet struct {
	net.Listener
	dn   string
	auth *fakeAuth
	cut  atomic.Bool

	mu    sync.Mutex
	conns map[*testConn]struct{}
}

var errCut = errors.New("network cut by test")

// handshakeTimeout bounds the test handshake on both sides.
const handshakeTimeout = 2 * time.Second

func listenTest(tb testing.TB, addr, dn string, auth *fakeAuth) *testNet {
	tb.Helper()
	var ln net.Listener
	var err error
	for range 50 { // a restarted member takes its old port back; give TIME_WAIT a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("listen on %s: %v", addr, err)
	}
	n := &testNet{Listener: ln, dn: dn, auth: auth, conns: map[*testConn]struct{}{}}
	auth.attach(n)
	return n
}

type testConn struct {
	net.Conn
	n       *testNet
	peer    string // the peer's DN
	dialled string // the address dialled; empty on accepted conns
	once    sync.Once
}

func (c *testConn) Close() error {
	c.once.Do(func() {
		c.n.mu.Lock()
		delete(c.n.conns, c)
		c.n.mu.Unlock()
	})
	return c.Conn.Close()
}

// Accept never fails for one conn: a refused or broken handshake is dropped, as the mtls
// listener does.
func (n *testNet) Accept() (net.Conn, error) {
	for {
		c, err := n.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := n.accept(c); tc != nil {
			return tc, nil
		}
	}
}

func (n *testNet) accept(c net.Conn) net.Conn {
	if n.cut.Load() {
		c.Close()
		return nil
	}
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	peer, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil {
		c.Close()
		return nil
	}
	tc := n.register(c, strings.TrimSuffix(peer, "\n"), "")
	if tc == nil {
		return nil
	}
	if _, err := io.WriteString(c, "\x01"+n.dn+"\n"); err != nil {
		tc.Close()
		return nil
	}
	_ = c.SetDeadline(time.Time{})
	return tc
}

func (n *testNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if n.cut.Load() {
		return nil, errCut
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.WriteString(c, n.dn+"\n"); err != nil {
		c.Close()
		return nil, err
	}
	// Byte by byte: nothing past the handshake may be read ahead.
	var line []byte
	for b := [1]byte{}; len(line) < 256; {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			c.Close()
			return nil, fmt.Errorf("dial %s: refused: %w", addr, err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if len(line) == 0 || line[0] != 1 {
		c.Close()
		return nil, fmt.Errorf("dial %s: bad handshake", addr)
	}
	tc := n.register(c, string(line[1:]), addr)
	if tc == nil {
		return nil, fmt.Errorf("dial %s: peer %s not authorised", addr, line[1:])
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// register tracks c if its peer is authorised now; a member set stored after this check
// finds c tracked and checks it again.
func (n *testNet) register(c net.Conn, peer, dialled string) *testConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.auth.allows(peer, dialled) {
		c.Close()
		return nil
	}
	tc := &testConn{Conn: c, n: n, peer: peer, dialled: dialled}
	n.conns[tc] = struct{}{}
	return tc
}

// recheck closes the conns of peers no longer authorised.
func (n *testNet) recheck() {
	n.mu.Lock()
	var refused []*testConn
	for c := range n.conns {
		if !n.auth.allows(c.peer, c.dialled) {
			refused = append(refused, c)
		}
	}
	n.mu.Unlock()
	for _, c := range refused {
		c.Close()
	}
}

// connsWith counts the live conns with the peer whose DN is dn.
func (n *testNet) connsWith(dn string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for c := range n.conns {
		if c.peer == dn {
			k++
		}
	}
	return k
}

// setCut cuts or heals the member off the network.
func (n *testNet) setCut(cut bool) {
	n.cut.Store(cut)
	if !cut {
		return
	}
	n.mu.Lock()
	conns := make([]*testConn, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// fakeAuth is the Authoriser of one member: it holds the member set and enforces it on the
// member's current testNet.
type fakeAuth struct {
	join []string // as mtls.Config.JoinAddrs

	mu      sync.Mutex
	members map[string]string
	nw      *testNet
}

func (a *fakeAuth) SetMembers(m map[string]string) {
	a.mu.Lock()
	a.members = maps.Clone(m)
	nw := a.nw
	a.mu.Unlock()
	if nw != nil {
		nw.recheck()
	}
}

func (a *fakeAuth) attach(n *testNet) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nw = n
}

func (a *fakeAuth) get() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.members)
}

// allows is mtls's policy dn: deny by default; the DN must be a member's, and the one at
// dialled when that address is known; a join address nobody named yet is trusted to dial.
func (a *fakeAuth) allows(dn, dialled string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if dialled != "" {
		want, ok := a.members[dialled]
		if ok {
			return dn == want
		}
		if slices.Contains(a.join, dialled) {
			return true
		}
	}
	for _, d := range a.members {
		if d == dn {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or the deadline passes, then fails with msg.
func waitFor(tb testing.TB, timeout time.Duration, msg string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger logs warnings and errors to tb until tb's cleanup, after which raft's
// connection handlers, which nobody waits for, may still log.
func testLogger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct {
	tb   testing.TB
	done atomic.Bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.tb.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// checkNoLeaks fails tb if goroutines of raft, its log stores or this package are still
// running once every member is closed; connection handlers get a moment to notice.
func checkNoLeaks(tb testing.TB) {
	tb.Helper()
	var leaked []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked = leaked[:0]
		buf := make([]byte, 4<<20)
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "checkNoLeaks") {
				continue
			}
			if strings.Contains(g, "github.com/hashicorp/raft") || strings.Contains(g, "mirrorkv/mirrorkv/cluster.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d goroutines left after every member closed:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connsTo counts the live conns this member dialled to addr.
func (m *mux) connsTo(addr string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for c := range m.conns {
		if c.dialled == addr {
			n++
		}
	}
	return n
}

func (n *testNet) PeerDN(c net.Conn) (string, error) {
	if tc, ok := c.(*testConn); ok {
		return tc.peer, nil
	}
	return "", fmt.Errorf("conn %T is not from the test network", c)
}

// Revision is the store revision, for Recover.
func (s *memStore) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Rev
}
