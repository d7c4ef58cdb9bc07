package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/wire"
)

// lock is the distributed lock of docs/api.md ("A lock from a lease, a transaction and a
// watch"), as etcd's concurrency.Mutex builds it: each contender holds a lease and creates
// PREFIX/LEASE-ID attached to it, in a transaction that creates it only if it does not exist;
// the contender whose key has the lowest revision holds the lock; every other one watches
// the deletion of the key just ahead of its own, so that a release wakes one waiter. A
// holder that dies loses its key when its lease expires, and the next one gets the lock.
type lock struct {
	c      *client.Client
	prefix string
	lease  client.Lease
	key    string
	rev    int64
}

func newLock(ctx context.Context, c *client.Client, prefix string, ttl time.Duration) (*lock, error) {
	l, err := c.Grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &lock{c: c, prefix: prefix, lease: l, key: prefix + strconv.FormatInt(l.ID, 16)}, nil
}

// acquire returns once this contender holds the lock.
func (l *lock) acquire(ctx context.Context) error {
	res, err := l.c.Txn(ctx, client.Txn{
		Compare: []wire.Compare{{Key: l.key, Target: wire.TargetRevision, Revision: 0}},
		Then:    []wire.TxnOp{{Op: wire.OpPut, Key: l.key, Lease: l.lease.ID}},
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", l.key, err)
	}
	if !res.Succeeded {
		return fmt.Errorf("create %s: it exists already", l.key)
	}
	l.rev = res.Revision
	for {
		list, err := l.c.List(ctx, l.prefix, "", 1000)
		if err != nil {
			return err
		}
		// The key just ahead of ours: the one with the highest revision below ours.
		var ahead wire.KV
		for _, kv := range list.KVs {
			if kv.Revision < l.rev && kv.Revision > ahead.Revision {
				ahead = kv
			}
		}
		if ahead.Key == "" {
			return nil // ours is the oldest: the lock is ours
		}
		if err := waitDeleted(ctx, l.c, ahead.Key, list.Revision+1); err != nil {
			return err
		}
	}
}

// waitDeleted returns once key is deleted at a revision from from on.
func waitDeleted(ctx context.Context, c *client.Client, key string, from int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp, err := range c.Watch(ctx, key, client.ExactKey(), client.From(from)) {
		if err != nil {
			return err
		}
		for _, ev := range resp.Events {
			if ev.Type == wire.EventDelete {
				return nil
			}
		}
	}
	return ctx.Err()
}

// release gives the lock up: the key goes, and with it the lease.
func (l *lock) release(ctx context.Context) error {
	_, err := l.c.Revoke(ctx, l.lease.ID)
	return err
}

// Four contenders take a lock in turn and each time increment a counter with a read, a
// pause and a write that no transaction protects: only the lock keeps the increments from
// overwriting each other, so the final count says whether it ever let two in at once. Then
// a holder dies without releasing: the next contender gets the lock once the dead one's
// lease expires.
func TestLock(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	const contenders, rounds = 4, 5
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var inside, maxInside, entered int
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, contenders)
	for i := range contenders {
		c := g.Admin()
		wg.Go(func() {
			for range rounds {
				l, err := newLock(ctx, c, "locks/counter/", 10*time.Second)
				if err == nil {
					err = l.acquire(ctx)
				}
				if err != nil {
					errs <- fmt.Errorf("contender %d: %w", i, err)
					return
				}
				mu.Lock()
				inside++
				entered++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				v, _, err := c.Get(ctx, "counter")
				n := 0
				if err == nil {
					n, _ = strconv.Atoi(string(v))
				} else if !client.IsNotFound(err) {
					errs <- err
					return
				}
				time.Sleep(20 * time.Millisecond)
				if _, err := c.Put(ctx, "counter", []byte(strconv.Itoa(n+1))); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				inside--
				mu.Unlock()
				if err := l.release(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, _, err := g.Admin().Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != strconv.Itoa(contenders*rounds) || maxInside != 1 || entered != contenders*rounds {
		t.Fatalf("counter %s after %d entries, at most %d inside at once; want %d and 1", v, entered, maxInside, contenders*rounds)
	}

	// A holder that dies: it never releases, and its lease is not kept alive.
	dead, err := newLock(ctx, g.Admin(), "locks/dead/", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := newLock(ctx, g.Admin(), "locks/dead/", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := next.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	if waited < 2*time.Second {
		t.Fatalf("the next contender got the lock after %s, before the dead holder's 3 s lease could expire", waited)
	}
	t.Logf("the next contender got the lock %s after the dead holder's last keep-alive (lease TTL 3 s)", waited.Round(time.Millisecond))
	if _, err := dead.c.KeepAlive(ctx, dead.lease.ID); !client.IsLeaseNotFound(err) {
		t.Fatalf("the dead holder's lease after the takeover: %v; want it gone", err)
	}
}
