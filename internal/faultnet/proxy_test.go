package faultnet_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/faultnet"
)

// Tests in this package do not call t.Parallel: TestProxy_Close counts the process's
// goroutines, which parallel tests would disturb.

const (
	ipA = "127.0.0.2"
	ipB = "127.0.0.3"
	ipC = "127.0.0.4"
)

func TestProxy_Forward(t *testing.T) {
	t.Run("byte exact both ways", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		client, server := connect(t, ipA, p, tg)

		up, down := random(t, 1<<20), random(t, 1<<20+7)
		var wg sync.WaitGroup
		for _, w := range []struct {
			c    net.Conn
			data []byte
		}{{client, up}, {server, down}} {
			wg.Go(func() {
				if _, err := w.c.Write(w.data); err != nil {
					t.Errorf("write: %v", err)
				}
			})
		}
		gotUp, gotDown := readN(t, server, len(up)), readN(t, client, len(down))
		wg.Wait()
		if !bytes.Equal(gotUp, up) {
			t.Error("bytes to the target differ from those sent")
		}
		if !bytes.Equal(gotDown, down) {
			t.Error("bytes from the target differ from those sent")
		}
		s := p.Stats()
		if want := int64(len(up) + len(down)); s.Forwarded != want {
			t.Errorf("Stats().Forwarded = %d, want %d", s.Forwarded, want)
		}
		if s.Accepted != 1 || s.Active != 1 || s.Refused != 0 || s.Dropped != 0 {
			t.Errorf("Stats() = %+v, want one accepted and active connection", s)
		}
	})

	t.Run("half close", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		client, server := connect(t, ipA, p, tg)

		write(t, client, "last words")
		if err := client.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := server.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(server)
		if err != nil || string(got) != "last words" {
			t.Fatalf("target read %q, %v; want the data then end of stream", got, err)
		}
		// The other direction still flows after the dialer's half-close.
		write(t, server, "reply")
		expectRead(t, client, "reply")
		_ = server.Close()
		expectDead(t, client)
		waitFor(t, "the link to be forgotten", func() bool { return p.Stats().Active == 0 })
	})

	t.Run("target down", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		addr := tg.addr()
		tg.close()
		p := listen(t, addr)
		expectRefused(t, ipA, p.Addr())
		waitFor(t, "the failed dial to be counted", func() bool { return p.Stats().Failed == 1 })
	})
}

func TestProxy_Cut(t *testing.T) {
	t.Run("closes live conns", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		client, server := connect(t, ipA, p, tg)
		ping(t, client, server)

		p.Cut(ipA)
		expectDead(t, client)
		expectDead(t, server)
		waitFor(t, "the link to be forgotten", func() bool { return p.Stats().Active == 0 })
	})

	t.Run("refuses new conns", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		p.Cut(ipA)
		expectRefused(t, ipA, p.Addr())
		waitFor(t, "the refusal to be counted", func() bool { return p.Stats().Refused == 1 })
		// The proxy refuses before dialing, so the target never sees the connection.
		tg.idle(t)
		if s := p.Stats(); s.Accepted != 0 {
			t.Errorf("Stats().Accepted = %d, want 0", s.Accepted)
		}
	})

	t.Run("other sources unaffected", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		cutClient, _ := connect(t, ipA, p, tg)
		client, server := connect(t, ipB, p, tg)

		p.Cut(ipA)
		expectDead(t, cutClient)
		ping(t, client, server)
		client2, server2 := connect(t, ipB, p, tg)
		ping(t, client2, server2)
	})

	t.Run("heal restores", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		p.Cut(ipA)
		expectRefused(t, ipA, p.Addr())

		p.Heal(ipA)
		client, server := connect(t, ipA, p, tg)
		ping(t, client, server)
	})

	t.Run("any source", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		clientA, _ := connect(t, ipA, p, tg)
		clientB, _ := connect(t, ipB, p, tg)

		p.Cut(faultnet.AnySource)
		expectDead(t, clientA)
		expectDead(t, clientB)
		// Healing one source does not lift a rule set for every source.
		p.Heal(ipA)
		expectRefused(t, ipA, p.Addr())

		p.HealAll()
		client, server := connect(t, ipA, p, tg)
		ping(t, client, server)
	})
}

func TestProxy_Blackhole(t *testing.T) {
	tests := []struct {
		name     string
		dir      faultnet.Direction
		dropUp   bool // bytes from the dialer to the target are lost
		dropDown bool // bytes from the target to the dialer are lost
	}{
		{name: "to target", dir: faultnet.ToTarget, dropUp: true},
		{name: "from target", dir: faultnet.FromTarget, dropDown: true},
		{name: "both", dir: faultnet.Both, dropUp: true, dropDown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := startTarget(t, "127.0.0.1")
			p := listen(t, tg.addr())
			client, server := connect(t, ipA, p, tg)
			ping(t, client, server)

			p.Blackhole(ipA, tt.dir)
			write(t, client, "lost-up")
			write(t, server, "lost-down")
			var dropped int64
			if tt.dropUp {
				dropped += int64(len("lost-up"))
			} else {
				expectRead(t, server, "lost-up")
			}
			if tt.dropDown {
				dropped += int64(len("lost-down"))
			} else {
				expectRead(t, client, "lost-down")
			}
			waitFor(t, "the blackhole to drop the bytes", func() bool { return p.Stats().Dropped == dropped })

			// After healing, the next bytes on each side are the new ones: what the
			// blackhole took never arrives late.
			p.Heal(ipA)
			write(t, client, "after-up")
			write(t, server, "after-down")
			expectRead(t, server, "after-up")
			expectRead(t, client, "after-down")
			if s := p.Stats(); s.Dropped != dropped || s.Active != 1 {
				t.Errorf("Stats() = %+v, want %d dropped and the connection open", s, dropped)
			}
		})
	}

	t.Run("new conns", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		p.Blackhole(ipA, faultnet.ToTarget)
		client, server := connect(t, ipA, p, tg)

		write(t, client, "lost")
		waitFor(t, "the blackhole to drop the bytes", func() bool { return p.Stats().Dropped == 4 })
		write(t, server, "still flows")
		expectRead(t, client, "still flows")
	})
}

func TestProxy_Delay(t *testing.T) {
	const delay = 150 * time.Millisecond
	for _, src := range []string{ipA, faultnet.AnySource} {
		t.Run("source "+src, func(t *testing.T) {
			tg := startTarget(t, "127.0.0.1")
			p := listen(t, tg.addr())
			client, server := connect(t, ipA, p, tg)
			p.Delay(src, delay)

			start := time.Now()
			write(t, client, "ping")
			expectRead(t, server, "ping")
			if got := time.Since(start); got < delay {
				t.Errorf("one way took %v, want at least %v", got, delay)
			}
			write(t, server, "pong")
			expectRead(t, client, "pong")
			if got := time.Since(start); got < 2*delay {
				t.Errorf("round trip took %v, want at least %v", got, 2*delay)
			}

			p.Heal(src)
			ping(t, client, server)
		})
	}

	t.Run("keeps order", func(t *testing.T) {
		tg := startTarget(t, "127.0.0.1")
		p := listen(t, tg.addr())
		client, server := connect(t, ipA, p, tg)
		p.Delay(ipA, 20*time.Millisecond)

		var want bytes.Buffer
		for i := range 50 {
			msg := string(rune('a'+i%26)) + "-"
			want.WriteString(msg)
			write(t, client, msg)
			if i == 25 {
				// Shrinking the delay mid-stream must not let later chunks overtake.
				p.Delay(ipA, time.Millisecond)
			}
		}
		expectRead(t, server, want.String())
	})
}

func TestProxy_Close(t *testing.T) {
	baseline := runtime.NumGoroutine()

	tg := startTarget(t, "127.0.0.1")
	p, err := faultnet.Listen("127.0.0.1:0", tg.addr())
	if err != nil {
		t.Fatal(err)
	}
	client, server := connect(t, ipA, p, tg)
	ping(t, client, server)
	blackholed, _ := connect(t, ipB, p, tg)
	p.Blackhole(ipB, faultnet.Both)
	delayed, _ := connect(t, ipC, p, tg)
	// A chunk held back by a long delay must not hold Close up.
	p.Delay(ipC, time.Hour)
	write(t, delayed, "in flight")
	write(t, blackholed, "dropped")
	waitFor(t, "the blackhole to drop the bytes", func() bool { return p.Stats().Dropped == 7 })

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectDead(t, client)
	expectDead(t, server)
	expectDead(t, delayed)
	expectDead(t, blackholed)
	if s := p.Stats(); s.Active != 0 {
		t.Errorf("Stats().Active = %d after Close, want 0", s.Active)
	}
	if _, err := dialFrom(t, ipA, p.Addr()); err == nil {
		t.Error("dial succeeded after Close")
	}

	tg.close()
	for _, c := range []net.Conn{client, server, blackholed, delayed} {
		_ = c.Close()
	}
	waitFor(t, "goroutines to return to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestDirection_String(t *testing.T) {
	tests := map[faultnet.Direction]string{
		faultnet.ToTarget:   "to-target",
		faultnet.FromTarget: "from-target",
		faultnet.Both:       "both",
		0:                   "Direction(0)",
	}
	for d, want := range tests {
		if got := d.String(); got != want {
			t.Errorf("Direction(%d).String() = %q, want %q", int(d), got, want)
		}
	}
}

func random(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}
