package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// testNode is one member of an in-process group: real raft logs on disk, plain TCP.
type testNode struct {
	name string
	cfg  Config
	st   *memStore
	nw   *testNet
	auth *fakeAuth
	c    *Cluster
}

func (n *testNode) member(async bool) wire.Member {
	return wire.Member{Name: n.name, MemberAddr: n.cfg.Advertise, ClientURL: "https://" + n.name,
		DN: "CN=" + n.name, Async: async}
}

type testGroup struct {
	tb    testing.TB
	base  Config
	nodes []*testNode
}

// fastConfig is a test member config: short timeouts, so elections settle quickly.
func fastConfig() Config {
	return Config{GroupID: "test", HeartbeatTimeout: 200 * time.Millisecond,
		ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout: 5 * time.Millisecond, ApplyTimeout: 5 * time.Second,
		TransportTimeout: 2 * time.Second, StatusTimeout: time.Second}
}

// newTestGroup starts a bootstrapped member, then adds voters-1 failover and async members.
func newTestGroup(tb testing.TB, base Config, voters, async int) *testGroup {
	tb.Helper()
	g := &testGroup{tb: tb, base: base}
	first := g.start(tb, "m0", true, nil)
	waitFor(tb, 10*time.Second, "first member leads", func() bool { return first.c.isLeader() })
	waitFor(tb, 10*time.Second, "first member records itself", func() bool {
		_, err := memberNamed(first.c.st, first.name)
		return err == nil
	})
	for i := 1; i < voters+async; i++ {
		n := g.start(tb, fmt.Sprintf("m%d", i), false, []string{first.cfg.Advertise})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := g.leader(tb).c.AddMember(ctx, n.member(i >= voters))
		cancel()
		if err != nil {
			tb.Fatalf("add member %s: %v", n.name, err)
		}
	}
	return g
}

// start opens a member in its own directory, or reopens it with its store after a stop.
// The group closes it at its end; tb is the running test, which a failure stops.
func (g *testGroup) start(tb testing.TB, name string, bootstrap bool, join []string) *testNode {
	tb.Helper()
	n := g.node(name)
	addr := "127.0.0.1:0"
	if n == nil {
		n = &testNode{name: name, st: newMemStore(), auth: &fakeAuth{join: join}}
		n.cfg = g.base
		n.cfg.Name, n.cfg.Dir, n.cfg.DN = name, filepath.Join(g.tb.TempDir(), name), "CN="+name
		n.cfg.ClientURL, n.cfg.Bootstrap, n.cfg.Join = "https://"+name, bootstrap, join
		g.nodes = append(g.nodes, n)
	} else {
		addr = n.cfg.Advertise
	}
	n.nw = listenTest(tb, addr, n.cfg.DN, n.auth)
	n.cfg.Advertise = n.nw.Addr().String()
	c, err := within(tb, startTimeout, "start member "+name, func() (*Cluster, error) {
		return New(n.cfg, n.st, n.nw, n.auth, testLogger(g.tb))
	})
	if err != nil {
		n.nw.Close()
		tb.Fatalf("start member %s: %v", name, err)
	}
	n.c = c
	g.tb.Cleanup(func() { closeWithin(g.tb, c, name) })
	return n
}

// startTimeout bounds New and Close in tests: both should take well under a second.
const startTimeout = 15 * time.Second

func (g *testGroup) stop(tb testing.TB, n *testNode) {
	tb.Helper()
	closeWithin(tb, n.c, n.name)
}

// closeWithin closes c, failing the test if Close errs or does not return in time.
func closeWithin(tb testing.TB, c *Cluster, name string) {
	tb.Helper()
	if _, err := within(tb, startTimeout, "close member "+name, func() (struct{}, error) {
		return struct{}{}, c.Close()
	}); err != nil {
		tb.Errorf("close member %s: %v", name, err)
	}
}

// within runs f and fails the test at once, with a goroutine dump of the package's
// goroutines in the log, if f has not returned after timeout; f is then abandoned.
func within[T any](tb testing.TB, timeout time.Duration, what string, f func() (T, error)) (T, error) {
	tb.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(timeout):
		buf := make([]byte, 1<<20)
		tb.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		tb.Fatalf("%s did not return within %s", what, timeout)
		panic("unreachable")
	}
}

func (g *testGroup) node(name string) *testNode {
	for _, n := range g.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// leader waits for a primary among the running members and returns it.
func (g *testGroup) leader(tb testing.TB) *testNode {
	tb.Helper()
	var l *testNode
	waitFor(tb, 10*time.Second, "a primary is elected", func() bool {
		for _, n := range g.nodes {
			if !n.c.life.closing.Load() && n.c.raft.State() == raft.Leader {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// settled waits until every running member that the primary's configuration holds sees
// that primary in the primary's term: after a healed partition, a member that campaigned
// while cut off may still unseat the primary once.
func (g *testGroup) settled(tb testing.TB) {
	tb.Helper()
	waitFor(tb, 20*time.Second, "the group settles on one primary and term", func() bool {
		l := g.leader(tb)
		term := l.c.raft.CurrentTerm()
		for _, n := range g.nodes {
			if n.c.life.closing.Load() || raftServer(l.c.raft, n.name) == nil {
				continue
			}
			if _, id := n.c.raft.LeaderWithID(); string(id) != l.name || n.c.raft.CurrentTerm() != term {
				return false
			}
		}
		return true
	})
}

func (g *testGroup) followers() []*testNode {
	var out []*testNode
	for _, n := range g.nodes {
		if !n.c.life.closing.Load() && n.c.raft.State() != raft.Leader {
			out = append(out, n)
		}
	}
	return out
}

func put(tb testing.TB, c *Cluster, key, value string) store.Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Apply(ctx, store.Command{Op: store.OpPut, Key: key, Value: []byte(value)})
	if err != nil {
		tb.Fatalf("put %s on %s: %v", key, c.cfg.Name, err)
	}
	if res.Err != nil {
		tb.Fatalf("put %s on %s: result: %v", key, c.cfg.Name, res.Err)
	}
	return res
}

// readLinear makes a linearizable read of key on n.
func readLinear(tb testing.TB, n *testNode, key string) (store.KV, bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.c.ReadIndex(ctx); err != nil {
		tb.Fatalf("read index on %s: %v", n.name, err)
	}
	return n.st.get(key)
}

func status(tb testing.TB, n *testNode) wire.Status {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := n.c.Status(ctx)
	if err != nil {
		tb.Fatalf("status of %s: %v", n.name, err)
	}
	return st
}

func memberRole(st wire.Status, name string) wire.Role {
	for _, m := range st.Members {
		if m.Name == name {
			return m.Role
		}
	}
	return ""
}
