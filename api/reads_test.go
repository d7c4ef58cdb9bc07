package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/reason"
)

func TestReadGate_ShareOfOneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newReadGate(100, 40, time.Second, prometheus.NewRegistry())
		ctx := t.Context()
		a, err := g.acquire(ctx, "greedy", 30)
		if err != nil || a != 30 {
			t.Fatalf("acquire 30 of a share of 40 = %d, %v", a, err)
		}
		// Past its share, the client is refused at once, though the gate has room.
		start := time.Now()
		_, err = g.acquire(ctx, "greedy", 20)
		if e := toError(err); e.Status != http.StatusServiceUnavailable || e.Reason != reason.Busy || !strings.Contains(e.Msg, "greedy") {
			t.Fatalf("acquire past the share = %v (%+v), want 503 Busy naming the client", err, e)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("refused after %s, want at once", waited)
		}
		// Another read of the same client may not grow past what is left of the share.
		if held, ok := g.tryGrow("greedy", 0, 20); ok || held != 0 {
			t.Errorf("tryGrow of a second read past the share = %d, %v; want 0, false", held, ok)
		}
		// Another client still finds its room.
		b, err := g.acquire(ctx, "other", 40)
		if err != nil || b != 40 {
			t.Fatalf("another client's acquire = %d, %v; want 40", b, err)
		}
		// A read larger than the share takes the whole share.
		g.release("greedy", a)
		if n, err := g.acquire(ctx, "greedy", 1000); err != nil || n != 40 {
			t.Fatalf("acquire 1000 with a share of 40 = %d, %v; want 40", n, err)
		}
		g.release("greedy", 40)
		g.release("other", b)
		if len(g.held) != 0 {
			t.Errorf("the gate still counts bytes after every release: %v", g.held)
		}
	})
}

func TestReadGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newReadGate(100, 100, time.Second, prometheus.NewRegistry())
		ctx := t.Context()

		a, err := g.acquire(ctx, "c1", 60)
		if err != nil || a != 60 {
			t.Fatalf("acquire 60 of 100 = %d, %v", a, err)
		}
		// No room for 60 more: the read waits ReadWait, then is refused as busy.
		start := time.Now()
		_, err = g.acquire(ctx, "c2", 60)
		if e := toError(err); e.Status != http.StatusServiceUnavailable || e.Reason != reason.Busy || e.RetryAfter != 1 {
			t.Fatalf("acquire past the size = %v (%+v), want 503 Busy with Retry-After 1", err, e)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("refused after %s, want the wait of 1s", waited)
		}
		// A read that waits gets its bytes as soon as they are released.
		done := make(chan int64)
		go func() {
			n, err := g.acquire(ctx, "c2", 60)
			if err != nil {
				t.Errorf("acquire after release: %v", err)
			}
			done <- n
		}()
		time.Sleep(500 * time.Millisecond)
		g.release("c1", a)
		b := <-done
		if b != 60 {
			t.Fatalf("acquired %d, want 60", b)
		}
		// tryGrow never waits.
		other, _ := g.acquire(ctx, "c3", 20)
		if held, ok := g.tryGrow("c2", b, 100); ok || held != b {
			t.Errorf("tryGrow(60, 100) with 20 free = %d, %v; want 60, false", held, ok)
		}
		held, ok := g.tryGrow("c2", b, 80)
		if !ok || held != 80 {
			t.Errorf("tryGrow(60, 80) with 20 free = %d, %v; want 80, true", held, ok)
		}
		g.release("c2", held)
		g.release("c3", other)
		// A read larger than the whole gate takes all of it rather than waiting forever.
		all, err := g.acquire(ctx, "c1", 1000)
		if err != nil || all != 100 {
			t.Fatalf("acquire 1000 of 100 = %d, %v; want 100", all, err)
		}
		// A client that goes away while waiting gets its own error, not Busy.
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(100 * time.Millisecond)
			cancel()
		}()
		if _, err := g.acquire(cctx, "c2", 1); !errors.Is(err, context.Canceled) {
			t.Errorf("acquire with the client gone = %v, want context.Canceled", err)
		}
		g.release("c1", all)
		if n, err := g.acquire(ctx, "c1", 100); err != nil || n != 100 {
			t.Errorf("the gate is not whole again after every release: %d, %v", n, err)
		}
	})
}
