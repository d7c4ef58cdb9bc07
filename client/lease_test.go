package client_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/client"
)

func TestClient_Lease(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	c := newClient(t, srv.PKI, "", srv.URL)
	ctx := t.Context()

	l, err := c.Grant(ctx, 1500*time.Millisecond)
	if err != nil || l.ID <= 0 || l.TTL != 2 {
		t.Fatalf("Grant(1.5s) = %+v, %v; want an ID and TTL 2", l, err)
	}
	for _, k := range []string{"svc/a", "svc/b"} {
		if _, err := c.PutWithLease(ctx, k, []byte("up"), l.ID); err != nil {
			t.Fatalf("PutWithLease(%s) = %v", k, err)
		}
	}
	if _, err := c.PutWithLease(ctx, "svc/c", nil, 987654); !client.IsLeaseNotFound(err) {
		t.Fatalf("PutWithLease with an unknown lease = %v, want lease-not-found", err)
	}
	if got, err := c.Lease(ctx, l.ID); err != nil || !reflect.DeepEqual(got.Keys, []string{"svc/a", "svc/b"}) {
		t.Fatalf("Lease = %+v, %v", got, err)
	}
	if ls, err := c.Leases(ctx); err != nil || len(ls) != 1 || ls[0].KeyCount != 2 {
		t.Fatalf("Leases = %+v, %v", ls, err)
	}
	if got, err := c.KeepAlive(ctx, l.ID); err != nil || got.TTL != 2 {
		t.Fatalf("KeepAlive = %+v, %v", got, err)
	}
	got, err := c.Revoke(ctx, l.ID)
	if err != nil || !reflect.DeepEqual(got.Keys, []string{"svc/a", "svc/b"}) || got.Revision == 0 {
		t.Fatalf("Revoke = %+v, %v", got, err)
	}
	if _, _, err := c.Get(ctx, "svc/a"); !client.IsNotFound(err) {
		t.Fatalf("Get after revoke = %v, want not found", err)
	}
	if _, err := c.KeepAlive(ctx, l.ID); !client.IsLeaseNotFound(err) {
		t.Fatalf("KeepAlive after revoke = %v, want lease-not-found", err)
	}
}

func TestClient_KeepAliveUntil(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	c := newClient(t, srv.PKI, "", srv.URL)
	l, err := c.Grant(t.Context(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := c.KeepAliveInBackground(ctx, l)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Group.Calls("Apply") < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("KeepAliveInBackground ended with %v after cancel, want nil", err)
	}
	if n := srv.Group.Calls("Apply"); n < 3 {
		t.Fatalf("%d calls to Apply (grant and keep-alives), want at least 3", n)
	}

	// A lease that goes away ends the loop with lease-not-found.
	if _, err := c.Revoke(t.Context(), l.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.KeepAliveUntil(t.Context(), l); !client.IsLeaseNotFound(err) {
		t.Fatalf("KeepAliveUntil of a revoked lease = %v, want lease-not-found", err)
	}
}
