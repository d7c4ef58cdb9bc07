package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/store"
)

// storeGroup applies the writes of the fake group to a real store, whose change log the
// watches read; several API servers over one store stand for members that have applied
// the same entries.
type storeGroup struct {
	*apitest.Group
	mu sync.Mutex
	s  *store.Store
}

func (g *storeGroup) Apply(_ context.Context, cmd store.Command) (store.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.Apply(g.s.AppliedIndex()+1, store.EncodeCommand(cmd)), nil
}

// watchMembers serves n API servers over one store.
func watchMembers(t *testing.T, n int, cfg api.Config, opts store.Options) (*storeGroup, []*httptest.Server, *apitest.PKI) {
	t.Helper()
	opts.NoFsync = true
	s, err := store.Open(filepath.Join(t.TempDir(), "store.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	g := &storeGroup{Group: apitest.NewGroup("m1"), s: s}
	pki := apitest.NewPKI(t)
	var srvs []*httptest.Server
	for i := range n {
		cfg.Node = fmt.Sprintf("m%d", i+1)
		hs := httptest.NewUnstartedServer(api.New(cfg, g, s, prometheus.NewRegistry(), nil).Handler())
		hs.TLS = pki.ServerTLS()
		hs.StartTLS()
		t.Cleanup(hs.Close)
		srvs = append(srvs, hs)
	}
	return g, srvs, pki
}

func TestClient_Watch_Resumes(t *testing.T) {
	g, srvs, pki := watchMembers(t, 2, api.Config{WatchProgressInterval: 50 * time.Millisecond}, store.Options{})
	c := newClient(t, pki, "readonly", srvs[0].URL, srvs[1].URL)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const total = 200
	go func() {
		for i := range total {
			g.Apply(ctx, store.Command{Op: store.OpPut, Key: fmt.Sprintf("w/%03d", i), Value: []byte("v")})
			time.Sleep(time.Millisecond)
			if i == total/2 {
				srvs[0].CloseClientConnections() // the member the watch uses goes away
				srvs[0].Close()
			}
		}
		g.Apply(ctx, store.Command{Op: store.OpPut, Key: "other", Value: []byte("x")})
	}()
	want := int64(1)
	for resp, err := range c.Watch(ctx, "w/", client.From(1), client.WatchIdleTimeout(time.Second)) {
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		for _, e := range resp.Events {
			if e.Revision != want || e.Key != fmt.Sprintf("w/%03d", want-1) {
				t.Fatalf("event %s at %d, want w/%03d at %d", e.Key, e.Revision, want-1, want)
			}
			want++
		}
		if want > total {
			return
		}
	}
	t.Fatalf("watch ended at revision %d", want)
}

func TestClient_Watch_Compacted(t *testing.T) {
	g, srvs, pki := watchMembers(t, 1, api.Config{}, store.Options{ChangeRetention: 2})
	for i := range 4 {
		g.Apply(t.Context(), store.Command{Op: store.OpPut, Key: "k", Value: fmt.Append(nil, i)})
	}
	c := newClient(t, pki, "readonly", srvs[0].URL)
	for _, err := range c.Watch(t.Context(), "k", client.From(1)) {
		if ce, ok := errors.AsType[*client.CompactedError](err); !ok || ce.Oldest != 3 || ce.From != 1 {
			t.Fatalf("watch from 1: %v, want a CompactedError with oldest 3", err)
		}
		return
	}
	t.Fatal("the watch ended without an error")
}
