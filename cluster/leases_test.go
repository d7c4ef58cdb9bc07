package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mirrorkv/mirrorkv/store"
)

// The store is what the expiry reads in production.
var _ LeaseStore = (*store.Store)(nil)

// fakeLeases is a lease table whose revokes the test sees with the time they came.
type fakeLeases struct {
	mu      sync.Mutex
	leases  map[int64]store.Lease
	revoked map[int64]time.Time
}

func newFakeLeases(ls ...store.Lease) *fakeLeases {
	f := &fakeLeases{leases: map[int64]store.Lease{}, revoked: map[int64]time.Time{}}
	for _, l := range ls {
		f.leases[l.ID] = l
	}
	return f
}

func (f *fakeLeases) list() []store.Lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Lease
	for _, l := range f.leases {
		out = append(out, l)
	}
	return out
}

func (f *fakeLeases) keepAlive(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.leases[id]
	l.Touched++
	l.Refreshed = time.Now()
	f.leases[id] = l
}

func (f *fakeLeases) revoke(_ context.Context, id, touched int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.leases[id]
	if !ok {
		return store.ErrLeaseNotFound
	}
	if l.Touched != touched {
		return &store.PreconditionError{Want: touched, Current: l.Touched}
	}
	delete(f.leases, id)
	f.revoked[id] = time.Now()
	return nil
}

func (f *fakeLeases) revokedAt(id int64) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.revoked[id]
	return at, ok
}

func TestLeaseKeeper(t *testing.T) {
	const every = 250 * time.Millisecond
	keeper := func(f *fakeLeases, primary func() bool) *leaseKeeper {
		return &leaseKeeper{list: f.list, revoke: f.revoke, every: every, primary: primary,
			log: slog.New(slog.DiscardHandler)}
	}
	always := func() bool { return true }

	t.Run("expires within one check of the TTL", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			f := newFakeLeases(store.Lease{ID: 1, TTL: 2, Touched: 1, Refreshed: start})
			go keeper(f, always).run(t.Context())
			time.Sleep(3 * time.Second)
			at, ok := f.revokedAt(1)
			if !ok {
				t.Fatal("lease of 2s not revoked after 3s")
			}
			if d := at.Sub(start); d < 2*time.Second || d > 2*time.Second+every {
				t.Fatalf("revoked after %s, want within [2s, 2s+%s]", d, every)
			}
		})
	})
	t.Run("keep-alive keeps it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeLeases(store.Lease{ID: 1, TTL: 2, Touched: 1, Refreshed: time.Now()})
			go keeper(f, always).run(t.Context())
			for range 10 {
				time.Sleep(time.Second)
				f.keepAlive(1)
			}
			if _, ok := f.revokedAt(1); ok {
				t.Fatal("a lease kept alive every second was revoked")
			}
			time.Sleep(3 * time.Second)
			if _, ok := f.revokedAt(1); !ok {
				t.Fatal("lease not revoked once the keep-alives stopped")
			}
		})
	})
	t.Run("a new primary gives a fresh TTL", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Last refreshed long ago, under the previous primary.
			f := newFakeLeases(store.Lease{ID: 1, TTL: 5, Touched: 1, Refreshed: time.Now().Add(-time.Hour)})
			start := time.Now()
			go keeper(f, always).run(t.Context())
			time.Sleep(4 * time.Second)
			if _, ok := f.revokedAt(1); ok {
				t.Fatal("a new primary expired a lease before one full TTL of its own")
			}
			time.Sleep(2 * time.Second)
			at, ok := f.revokedAt(1)
			if !ok || at.Sub(start) > 5*time.Second+every {
				t.Fatalf("revoked = %v at %s after takeover, want within 5s+%s", ok, at.Sub(start), every)
			}
		})
	})
	t.Run("stops when no longer primary", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeLeases(store.Lease{ID: 1, TTL: 1, Touched: 1, Refreshed: time.Now()})
			var mu sync.Mutex
			leads := true
			done := make(chan struct{})
			go func() {
				defer close(done)
				keeper(f, func() bool { mu.Lock(); defer mu.Unlock(); return leads }).run(t.Context())
			}()
			time.Sleep(every / 2)
			mu.Lock()
			leads = false
			mu.Unlock()
			synctest.Wait()
			time.Sleep(2 * time.Second)
			<-done
			if _, ok := f.revokedAt(1); ok {
				t.Fatal("a member that no longer leads revoked a lease")
			}
		})
	})
	t.Run("a failed revoke is retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeLeases(store.Lease{ID: 1, TTL: 1, Touched: 1, Refreshed: time.Now()})
			k := keeper(f, always)
			fails := 2
			k.revoke = func(ctx context.Context, id, touched int64) error {
				if fails > 0 {
					fails--
					return errors.New("no quorum")
				}
				return f.revoke(ctx, id, touched)
			}
			go k.run(t.Context())
			time.Sleep(2 * time.Second)
			if _, ok := f.revokedAt(1); !ok {
				t.Fatal("lease not revoked after two failed attempts")
			}
		})
	})
}

func TestResult_Lease(t *testing.T) {
	for _, r := range []store.Result{
		{Revision: 4, Lease: &store.Lease{ID: 9, TTL: 60, Touched: 12}},
		{Revision: 5, Lease: &store.Lease{ID: 9, TTL: 60, Touched: 12, Keys: []string{"a", "b/c"}}},
		{Revision: 4, Err: fmt.Errorf("lease 9: %w", store.ErrLeaseNotFound)},
		{Revision: 4, Err: store.ErrTooManyLeases},
		{Revision: 4, Err: store.ErrLeaseFull},
	} {
		got, err := decodeResult(encodeResult(r))
		if err != nil {
			t.Fatalf("decodeResult(encodeResult(%+v)) = %v", r, err)
		}
		if r.Err != nil {
			if kind := leaseErrKind(r.Err); !errors.Is(got.Err, leaseErrs[kind]) || got.Err.Error() != r.Err.Error() {
				t.Errorf("error %v came back as %v", r.Err, got.Err)
			}
			continue
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip = %+v, want %+v", got, r)
		}
	}
}

func TestLeaseKeeper_ManyAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ls []store.Lease
		for i := range 500 {
			ls = append(ls, store.Lease{ID: int64(i + 1), TTL: 1, Touched: 1, Refreshed: time.Now()})
		}
		f := newFakeLeases(ls...)
		var mu sync.Mutex
		inFlight, most := 0, 0
		k := &leaseKeeper{list: f.list, every: 100 * time.Millisecond, primary: func() bool { return true },
			log: slog.New(slog.DiscardHandler),
			revoke: func(ctx context.Context, id, touched int64) error {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				mu.Unlock()
				time.Sleep(10 * time.Millisecond) // a commit
				mu.Lock()
				inFlight--
				mu.Unlock()
				return f.revoke(ctx, id, touched)
			}}
		go k.run(t.Context())
		time.Sleep(1200 * time.Millisecond)
		if n := len(f.list()); n != 0 {
			t.Fatalf("%d of 500 leases left 200ms past their TTL", n)
		}
		if most < 2 || most > maxRevokesInFlight {
			t.Fatalf("at most %d revokes in flight, want 2 to %d", most, maxRevokesInFlight)
		}
	})
}
