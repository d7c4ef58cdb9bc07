package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Lease is a lease as a member reports it: its ID, its TTL in seconds and, where the answer
// has them, its keys.
type Lease = wire.Lease

func leasePath(id int64) string { return "/v1/leases/" + strconv.FormatInt(id, 10) }

// Grant asks the group for a lease of ttl, rounded up to whole seconds; the answer has the
// ID the group chose and the TTL it granted (at least 2 s). The lease expires once a TTL
// passes without a keep-alive, and the keys put with it are then deleted. Needs readwrite.
func (c *Client) Grant(ctx context.Context, ttl time.Duration) (Lease, error) {
	var l Lease
	secs := int64((ttl + time.Second - 1) / time.Second)
	body := []byte(`{"ttl":` + strconv.FormatInt(secs, 10) + `}`)
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/leases", body: body, header: jsonHeader()})
	if err != nil {
		return l, fmt.Errorf("grant lease: %w", err)
	}
	return l, decode(resp, &l)
}

// KeepAlive starts lease id's TTL again and returns the lease with its TTL. It is safe to
// send again, so it is retried on any member. Needs readwrite.
func (c *Client) KeepAlive(ctx context.Context, id int64) (Lease, error) {
	var l Lease
	resp, err := c.do(ctx, request{method: http.MethodPost, path: leasePath(id) + "/keepalive", idempotent: true})
	if err != nil {
		return l, fmt.Errorf("keep lease %d alive: %w", id, err)
	}
	return l, decode(resp, &l)
}

// Revoke ends lease id at once: every key attached to it is deleted, all at one revision,
// which the answer carries with the keys. Needs readwrite.
func (c *Client) Revoke(ctx context.Context, id int64) (Lease, error) {
	var l Lease
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: leasePath(id)})
	if err != nil {
		return l, fmt.Errorf("revoke lease %d: %w", id, err)
	}
	return l, decode(resp, &l)
}

// Leases lists the group's leases with their TTLs and key counts. Needs readonly.
func (c *Client) Leases(ctx context.Context) ([]Lease, error) {
	var ll wire.LeaseList
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/leases", idempotent: true})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return ll.Leases, decode(resp, &ll)
}

// Lease returns lease id with its keys. Needs readonly.
func (c *Client) Lease(ctx context.Context, id int64) (Lease, error) {
	var l Lease
	resp, err := c.do(ctx, request{method: http.MethodGet, path: leasePath(id), idempotent: true})
	if err != nil {
		return l, fmt.Errorf("get lease %d: %w", id, err)
	}
	return l, decode(resp, &l)
}

// PutWithLease sets key to value and attaches it to lease id, so that it goes when the lease
// does; it returns the key's new revision. A plain Put detaches the key again.
func (c *Client) PutWithLease(ctx context.Context, key string, value []byte, id int64) (int64, error) {
	if value == nil {
		value = []byte{}
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, path: keyPath(key) + "?lease=" + strconv.FormatInt(id, 10), body: value})
	if err != nil {
		return 0, fmt.Errorf("put %q with lease %d: %w", key, id, err)
	}
	return revisionOf(resp.header), nil
}

// IsLeaseNotFound reports whether err says the lease does not exist (any more): it was
// revoked, or it expired.
func IsLeaseNotFound(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && reason.Code(e.Reason.Code) == reason.LeaseNotFound
}

// KeepAliveUntil keeps lease l alive until ctx ends, sending a keep-alive every third of its
// TTL; a failed one is sent again after a tenth of it, to the next endpoint, so that neither
// a failover nor a member cut off from the others (which holds a request while it waits for
// a primary) costs the lease. It returns nil when ctx ends, and an error for which
// IsLeaseNotFound reports true when the lease is gone (it expired, or was revoked).
func (c *Client) KeepAliveUntil(ctx context.Context, l Lease) error {
	ttl := time.Duration(max(l.TTL, 1)) * time.Second
	wait := ttl / 3
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		kctx, cancel := context.WithTimeout(ctx, ttl/3)
		_, err := c.KeepAlive(kctx, l.ID)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case IsLeaseNotFound(err):
			return err
		case err != nil:
			c.skipPreferred()
			wait = ttl / 10
		default:
			wait = ttl / 3
		}
	}
}

// skipPreferred makes the next request start at the endpoint after the preferred one: a
// request that ran out of time there may have found a member that cannot reach the primary.
func (c *Client) skipPreferred() {
	cur := c.next.Load()
	c.next.CompareAndSwap(cur, (cur+1)%int32(len(c.endpoints)))
}

// KeepAliveInBackground runs KeepAliveUntil in a goroutine. The channel receives its result
// (nil once ctx ends) and is closed.
func (c *Client) KeepAliveInBackground(ctx context.Context, l Lease) <-chan error {
	done := make(chan error, 1)
	go func() {
		defer close(done)
		done <- c.KeepAliveUntil(ctx, l)
	}()
	return done
}
