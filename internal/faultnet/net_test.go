package faultnet_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/faultnet"
)

// mesh is a three-member Net whose members are plain listeners standing in for real ones.
type mesh struct {
	net     *faultnet.Net
	ip      map[string]string
	targets map[string]*target
	proxies map[string]*faultnet.Proxy
}

func newMesh(tb testing.TB) *mesh {
	tb.Helper()
	m := &mesh{
		net:     faultnet.NewNet(),
		ip:      map[string]string{"a": ipA, "b": ipB, "c": ipC},
		targets: make(map[string]*target),
		proxies: make(map[string]*faultnet.Proxy),
	}
	tb.Cleanup(func() {
		if err := m.net.Close(); err != nil {
			tb.Error(err)
		}
	})
	for name, ip := range m.ip {
		m.targets[name] = startTarget(tb, ip)
		p, err := m.net.Add(name, "127.0.0.1:0", m.targets[name].addr(), ip)
		if err != nil {
			tb.Fatal(err)
		}
		m.proxies[name] = p
	}
	return m
}

// dial connects member from to member to through to's proxy and returns both ends.
func (m *mesh) dial(tb testing.TB, from, to string) (client, server net.Conn) {
	tb.Helper()
	return connect(tb, m.ip[from], m.proxies[to], m.targets[to])
}

func (m *mesh) refused(tb testing.TB, from, to string) {
	tb.Helper()
	expectRefused(tb, m.ip[from], m.proxies[to].Addr())
	m.targets[to].idle(tb)
}

func (m *mesh) reachable(tb testing.TB, from, to string) {
	tb.Helper()
	client, server := m.dial(tb, from, to)
	ping(tb, client, server)
}

func TestNet(t *testing.T) {
	t.Run("full mesh forwards", func(t *testing.T) {
		m := newMesh(t)
		for from := range m.ip {
			for to := range m.ip {
				if from != to {
					m.reachable(t, from, to)
				}
			}
		}
	})

	t.Run("isolate", func(t *testing.T) {
		m := newMesh(t)
		ab, _ := m.dial(t, "a", "b")
		ca, _ := m.dial(t, "c", "a")
		bcClient, bcServer := m.dial(t, "b", "c")

		if err := m.net.Isolate("a"); err != nil {
			t.Fatal(err)
		}
		expectDead(t, ab)
		expectDead(t, ca)
		for _, l := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}} {
			m.refused(t, l[0], l[1])
		}
		ping(t, bcClient, bcServer)
		m.reachable(t, "c", "b")

		m.net.Heal()
		m.reachable(t, "a", "b")
		m.reachable(t, "c", "a")
	})

	t.Run("cut link", func(t *testing.T) {
		m := newMesh(t)
		ab, _ := m.dial(t, "a", "b")
		if err := m.net.CutLink("a", "b"); err != nil {
			t.Fatal(err)
		}
		expectDead(t, ab)
		m.refused(t, "a", "b")
		m.refused(t, "b", "a")
		m.reachable(t, "a", "c")
		m.reachable(t, "c", "b")

		m.net.Heal()
		m.reachable(t, "b", "a")
	})

	t.Run("one way", func(t *testing.T) {
		m := newMesh(t)
		// a dials b, and b dials a: a's bytes must be lost on both.
		aOut, bIn := m.dial(t, "a", "b")
		bOut, aIn := m.dial(t, "b", "a")
		if err := m.net.OneWay("a", "b"); err != nil {
			t.Fatal(err)
		}

		write(t, aOut, "lost1")
		write(t, aIn, "lost2")
		write(t, bIn, "heard1")
		write(t, bOut, "heard2")
		expectRead(t, aOut, "heard1")
		expectRead(t, aIn, "heard2")
		waitFor(t, "both blackholes to drop a's bytes", func() bool {
			return m.proxies["b"].Stats().Dropped == 5 && m.proxies["a"].Stats().Dropped == 5
		})
		m.reachable(t, "c", "b")
		m.reachable(t, "b", "c")

		m.net.Heal()
		write(t, aOut, "after1")
		write(t, aIn, "after2")
		expectRead(t, bIn, "after1")
		expectRead(t, bOut, "after2")
	})

	t.Run("slow", func(t *testing.T) {
		const delay = 100 * time.Millisecond
		m := newMesh(t)
		// a dials b, and c dials a: both links carry the delay, each way.
		abClient, abServer := m.dial(t, "a", "b")
		caClient, caServer := m.dial(t, "c", "a")
		if err := m.net.Slow("a", delay); err != nil {
			t.Fatal(err)
		}
		for name, conn := range map[string][2]net.Conn{"a->b": {abClient, abServer}, "c->a": {caClient, caServer}} {
			start := time.Now()
			ping(t, conn[0], conn[1])
			if got := time.Since(start); got < 2*delay {
				t.Errorf("round trip on %s took %v, want at least %v", name, got, 2*delay)
			}
		}
		m.reachable(t, "b", "c")

		m.net.Heal()
		ping(t, abClient, abServer)
		if err := m.net.Slow("nobody", delay); !errors.Is(err, faultnet.ErrUnknownMember) {
			t.Errorf("Slow(nobody) = %v, want ErrUnknownMember", err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		m := newMesh(t)
		if err := m.net.Isolate("nobody"); !errors.Is(err, faultnet.ErrUnknownMember) {
			t.Errorf("Isolate(nobody) = %v, want ErrUnknownMember", err)
		}
		if err := m.net.CutLink("a", "nobody"); !errors.Is(err, faultnet.ErrUnknownMember) {
			t.Errorf("CutLink(a, nobody) = %v, want ErrUnknownMember", err)
		}
		if err := m.net.OneWay("nobody", "a"); !errors.Is(err, faultnet.ErrUnknownMember) {
			t.Errorf("OneWay(nobody, a) = %v, want ErrUnknownMember", err)
		}
		if _, err := m.net.Add("a", "127.0.0.1:0", "127.0.0.1:1", "127.0.0.9"); !errors.Is(err, faultnet.ErrMemberExists) {
			t.Errorf("Add(a) twice = %v, want ErrMemberExists", err)
		}
		if _, err := m.net.Add("d", "127.0.0.1:0", "127.0.0.1:1", ipA); !errors.Is(err, faultnet.ErrMemberExists) {
			t.Errorf("Add(d) with a's ip = %v, want ErrMemberExists", err)
		}
		if _, err := m.net.Add("d", "127.0.0.1:0", "127.0.0.1:1", "not-an-ip"); err == nil {
			t.Error("Add(d) with a bad ip succeeded")
		}
		if err := m.net.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.net.Add("d", "127.0.0.1:0", "127.0.0.1:1", "127.0.0.9"); !errors.Is(err, faultnet.ErrClosed) {
			t.Errorf("Add after Close = %v, want ErrClosed", err)
		}
	})
}
