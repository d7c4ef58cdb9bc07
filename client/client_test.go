package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

func newClient(t *testing.T, pki *apitest.PKI, role string, endpoints ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: endpoints, TLS: pki.ClientTLS(t, role)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClient_KV(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	c := newClient(t, srv.PKI, "", srv.URL)
	ctx := t.Context()

	rev, err := c.Put(ctx, "app/a b", []byte("v1"))
	if err != nil || rev != 1 {
		t.Fatalf("Put = %d, %v; want revision 1", rev, err)
	}
	val, got, err := c.Get(ctx, "app/a b")
	if err != nil || string(val) != "v1" || got != 1 {
		t.Fatalf("Get = %q, %d, %v; want v1 at 1", val, got, err)
	}
	if val, _, err := c.Get(ctx, "app/a b", client.Stale()); err != nil || string(val) != "v1" {
		t.Fatalf("stale Get = %q, %v", val, err)
	}
	if rev, err := c.PutIf(ctx, "app/a b", []byte("v2"), 1); err != nil || rev != 2 {
		t.Fatalf("PutIf at the current revision = %d, %v; want 2", rev, err)
	}
	_, err = c.PutIf(ctx, "app/a b", []byte("v3"), 1)
	if cur, ok := client.IsPreconditionFailed(err); !ok || cur != 2 {
		t.Fatalf("PutIf at a stale revision: %v; want precondition failed at 2 (got %d, %v)", err, cur, ok)
	}
	if _, err := c.Create(ctx, "app/a b", []byte("x")); err == nil {
		t.Fatal("Create of an existing key succeeded")
	}
	if _, err := c.Create(ctx, "app/new", []byte("x")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := c.DeleteIf(ctx, "app/new", 99); err == nil {
		t.Fatal("DeleteIf at a wrong revision succeeded")
	}
	if _, err := c.Delete(ctx, "app/new"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := c.Get(ctx, "app/new"); !client.IsNotFound(err) {
		t.Fatalf("Get after Delete: %v; want not found", err)
	}
	l, err := c.List(ctx, "app/", "", 10)
	if err != nil || len(l.KVs) != 1 || l.KVs[0].Key != "app/a b" || string(l.KVs[0].Value) != "v2" {
		t.Fatalf("List = %+v, %v; want app/a b = v2", l, err)
	}
}

// TestClient_ListAll follows the listing past the server's byte bound and its own pages.
func TestClient_ListAll(t *testing.T) {
	srv := apitest.Start(t, api.Config{MaxListBytes: 250}, nil)
	c := newClient(t, srv.PKI, "", srv.URL)
	ctx := t.Context()
	var want []string
	for i := range 12 {
		k := fmt.Sprintf("k/%02d", i)
		if _, err := c.Put(ctx, k, bytes.Repeat([]byte("v"), 96)); err != nil { // 100 bytes a key
			t.Fatal(err)
		}
		want = append(want, k)
	}
	if _, err := c.Put(ctx, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if l, err := c.List(ctx, "k/", "", 0); err != nil || len(l.KVs) != 2 || !l.More {
		t.Fatalf("one page = %d keys, more %v, %v; want 2 keys (250 bytes) and more", len(l.KVs), l.More, err)
	}
	collect := func(limit, stop int) []string {
		var got []string
		for kv, err := range c.ListAll(ctx, "k/", limit) {
			if err != nil {
				t.Fatalf("ListAll: %v", err)
			}
			got = append(got, kv.Key)
			if len(got) == stop {
				break
			}
		}
		return got
	}
	if got := collect(0, -1); !slices.Equal(got, want) {
		t.Errorf("ListAll(all) = %q, want %q", got, want)
	}
	if got := collect(5, -1); !slices.Equal(got, want[:5]) {
		t.Errorf("ListAll(limit 5) = %q, want %q", got, want[:5])
	}
	if got := collect(0, 3); !slices.Equal(got, want[:3]) {
		t.Errorf("ListAll stopped after 3 = %q, want %q", got, want[:3])
	}
	srv.Group.Fail(errors.New("disk on fire"))
	for _, err := range c.ListAll(ctx, "k/", 0) {
		if err == nil {
			t.Fatal("ListAll over a failing member yielded a key")
		}
		break
	}
}

// TestClient_Busy: a member that refuses a read as busy (503, reason 212) is skipped for the
// next endpoint, as one without a primary is.
func TestClient_Busy(t *testing.T) {
	pki := apitest.NewPKI(t)
	busy := apitest.Start(t, api.Config{Node: "m1"}, pki)
	free := apitest.Start(t, api.Config{Node: "m2"}, pki)
	busy.Group.Fail(reason.Wrap(reason.Busy, errors.New("gate full")))
	c := newClient(t, pki, "", busy.URL, free.URL)
	if _, err := c.List(t.Context(), "", "", 0); err != nil {
		t.Fatalf("List across a busy and a free member: %v", err)
	}
	if busy.Group.Calls("ReadIndex") != 1 || free.Group.Calls("ReadIndex") != 1 {
		t.Errorf("read index calls: busy %d, free %d; want 1 each", busy.Group.Calls("ReadIndex"), free.Group.Calls("ReadIndex"))
	}
}

func TestClient_ReusesConnections(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	c := newClient(t, srv.PKI, "", srv.URL)
	for range 50 {
		if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("100 sequential requests opened %d connections, want 1 kept alive", n)
	}
}

func TestClient_Admin(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	admin := newClient(t, srv.PKI, "admin", srv.URL)
	ctx := t.Context()
	m := wire.Member{Name: "m2", MemberAddr: "127.0.0.2:7001", DN: "CN=m2"}
	if err := admin.AddMember(ctx, m); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	ms, err := admin.Members(ctx)
	if err != nil || len(ms) != 2 || ms[1] != m {
		t.Fatalf("Members = %+v, %v", ms, err)
	}
	if err := admin.Promote(ctx, "m2"); err != nil || srv.Group.Calls("Promote") != 1 {
		t.Fatalf("Promote: %v", err)
	}
	if err := admin.TransferLeadership(ctx, "m2"); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if st, err := admin.StatusOf(ctx, srv.URL); err != nil || st.Primary != "m2" || st.Node != "m1" {
		t.Fatalf("StatusOf = %+v, %v; want m1's view with primary m2", st, err)
	}
	if err := admin.RemoveMember(ctx, "m2"); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	if err := admin.RemoveMember(ctx, "m2"); !client.IsNotFound(err) {
		t.Fatalf("RemoveMember of a removed member: %v; want not found", err)
	}

	ro := newClient(t, srv.PKI, "readonly", srv.URL)
	err = ro.AddMember(ctx, m)
	e, ok := errors.AsType[*client.Error](err)
	if !ok || e.Status != http.StatusForbidden || !strings.Contains(e.Fix, "--access admin") {
		t.Fatalf("readonly AddMember: %v; want 403 with a fix naming the admin role", err)
	}
}

// An admin operation answered "not the primary" goes to the primary the answer names, also
// when that member is not among the client's endpoints.
func TestClient_FollowsThePrimary(t *testing.T) {
	pki := apitest.NewPKI(t)
	standby := apitest.Start(t, api.Config{Node: "m1"}, pki)
	primary := apitest.Start(t, api.Config{Node: "m2"}, pki)
	standby.Group.Fail(reason.Wrap(reason.NotPrimary, errors.New("membership changes run on the primary only")))
	standby.Group.SetPrimaryURL(primary.URL)
	c := newClient(t, pki, "admin", standby.URL)
	if err := c.Promote(t.Context(), "m3"); err != nil {
		t.Fatalf("Promote through a standby that names the primary: %v", err)
	}
	if primary.Group.Calls("Promote") != 1 {
		t.Fatalf("the primary saw %d promotions, want 1", primary.Group.Calls("Promote"))
	}
	standby.Group.SetPrimaryURL("")
	err := c.Promote(t.Context(), "m3")
	if e, ok := errors.AsType[*client.Error](err); !ok || reason.Code(e.Reason.Code) != reason.NotPrimary {
		t.Fatalf("Promote through a standby that names no primary: %v; want the not-primary refusal", err)
	}
}

func TestClient_Failover(t *testing.T) {
	pki := apitest.NewPKI(t)
	sick := apitest.Start(t, api.Config{Node: "m1"}, pki)
	healthy := apitest.Start(t, api.Config{Node: "m2"}, pki)
	dead := apitest.Start(t, api.Config{Node: "m3"}, pki)
	dead.HTTP.Close()
	sick.Group.Fail(reason.Wrap(reason.NoPrimary, errors.New("election in progress")))

	c := newClient(t, pki, "", dead.URL, sick.URL, healthy.URL)
	if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put across a dead and a primary-less member: %v", err)
	}
	if _, err := healthy.Group.Get("k"); err != nil {
		t.Fatalf("the write did not reach the healthy member: %v", err)
	}
	if sick.Group.Calls("Apply") != 1 {
		t.Errorf("the primary-less member saw %d writes, want 1", sick.Group.Calls("Apply"))
	}

	only := newClient(t, pki, "", sick.URL)
	_, err := only.Put(t.Context(), "k", []byte("v"))
	e, ok := errors.AsType[*client.Error](err)
	if !ok || e.Status != http.StatusServiceUnavailable || reason.Code(e.Reason.Code) != reason.NoPrimary || e.Fix == "" {
		t.Fatalf("with no primary anywhere: %v; want 503 no-primary with a fix", err)
	}
}

func TestClient_OutcomeUnknown(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	srv.Group.Fail(reason.Wrap(reason.LeadershipLost, errors.New("stepped down")))
	c := newClient(t, srv.PKI, "", srv.URL)
	_, err := c.Put(t.Context(), "k", []byte("v"))
	if !client.IsOutcomeUnknown(err) || srv.Group.Calls("Apply") != 1 {
		t.Fatalf("Put after lost leadership: %v (applied %d times); want outcome unknown, sent once", err, srv.Group.Calls("Apply"))
	}
}

// A linearizable read whose read index timed out or met a lost leadership changed nothing:
// it goes to the next member, where a write with that outcome would not.
func TestClient_ReadAfterLostLeadership(t *testing.T) {
	pki := apitest.NewPKI(t)
	sick := apitest.Start(t, api.Config{Node: "m1"}, pki)
	healthy := apitest.Start(t, api.Config{Node: "m2"}, pki)
	sick.Group.Fail(reason.Wrap(reason.LeadershipLost, errors.New("stepped down")))
	if _, err := newClient(t, pki, "", healthy.URL).Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, pki, "", sick.URL, healthy.URL)
	if v, _, err := c.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get across a member that lost leadership and a healthy one: %q, %v", v, err)
	}
	if sick.Group.Calls("ReadIndex") != 1 {
		t.Errorf("the member that lost leadership saw %d read indexes, want 1", sick.Group.Calls("ReadIndex"))
	}
	applied := healthy.Group.Calls("Apply")
	if _, err := newClient(t, pki, "", sick.URL, healthy.URL).Put(t.Context(), "k2", []byte("v")); !client.IsOutcomeUnknown(err) || healthy.Group.Calls("Apply") != applied {
		t.Errorf("Put on the member that lost leadership: %v; want outcome unknown, not sent to the next member", err)
	}
}

func TestNew(t *testing.T) {
	pki := apitest.NewPKI(t)
	cases := []struct {
		name string
		cfg  client.Config
		want string
	}{
		{"no endpoints", client.Config{TLS: pki.ServerTLS()}, "no endpoints"},
		{"no TLS", client.Config{Endpoints: []string{"h:1"}}, "client certificate"},
		{"plain http", client.Config{Endpoints: []string{"http://h:1"}, TLS: pki.ServerTLS()}, "never speaks plain HTTP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := client.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v; want an error saying %q", err, c.want)
			}
		})
	}
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:8001"}, TLS: pki.ServerTLS()})
	if err != nil || c.Endpoints()[0] != "https://127.0.0.1:8001" {
		t.Fatalf("bare host:port: %v, %v; want https://127.0.0.1:8001", c, err)
	}
}

func TestLoadTLS(t *testing.T) {
	pki := apitest.NewPKI(t)
	cc := pki.Client(t, "alice", "readonly")
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, ca, cert, key, want string
	}{
		{"missing CA", "/nonexistent/ca.crt", cc.CertFile, cc.KeyFile, "/nonexistent/ca.crt"},
		{"CA not PEM", notPEM, cc.CertFile, cc.KeyFile, notPEM},
		{"key of another cert", pki.CAFile, cc.CertFile, pki.CAFile, cc.CertFile},
		{"nothing given", "", "", "", "--cacert"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := client.LoadTLS(c.ca, c.cert, c.key); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadTLS: %v; want an error naming %s", err, c.want)
			}
		})
	}
	cfg, err := client.LoadTLS(pki.CAFile, cc.CertFile, cc.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.Start(t, api.Config{}, pki)
	c, err := client.New(client.Config{Endpoints: []string{srv.URL}, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("Status with loaded credentials: %v", err)
	}
	if _, err := c.Put(t.Context(), "k", nil); err == nil {
		t.Fatal("a readonly certificate could write")
	}
}

// With a CRL, the client refuses a member whose certificate the CA revoked, although the CA
// signed it: a stolen member certificate cannot serve clients.
func TestLoadTLS_CRL(t *testing.T) {
	pki := apitest.NewPKI(t)
	srv := apitest.Start(t, api.Config{}, pki)
	cc := pki.Client(t, "alice", "readonly")
	other := apitest.NewPKI(t)
	day := time.Now().Add(24 * time.Hour)
	status := func(crl string) error {
		cfg, err := client.LoadTLS(pki.CAFile, cc.CertFile, cc.KeyFile, client.WithCRL(crl))
		if err != nil {
			t.Fatalf("LoadTLS with CRL %s: %v", crl, err)
		}
		c, err := client.New(client.Config{Endpoints: []string{srv.URL}, TLS: cfg, Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Status(t.Context())
		return err
	}
	if err := status(pki.CRL(t, day)); err != nil {
		t.Fatalf("Status with a CRL that lists nothing: %v", err)
	}
	if err := status(pki.CRL(t, day, pki.Server.Leaf)); !errors.Is(err, client.ErrRevoked) {
		t.Fatalf("Status against a member whose certificate is revoked: %v; want ErrRevoked", err)
	}
	if err := status(pki.CRL(t, time.Now().Add(-time.Hour))); err == nil || !strings.Contains(err.Error(), "past its next update") {
		t.Fatalf("Status with an expired CRL: %v; want a refusal saying it is past its next update", err)
	}
	if _, err := client.LoadTLS(pki.CAFile, cc.CertFile, cc.KeyFile, client.WithCRL(other.CRL(t, day))); err == nil || !strings.Contains(err.Error(), "not signed by a CA of the CA file") {
		t.Fatalf("LoadTLS with a CRL of another CA: %v; want a refusal", err)
	}
}

func newBenchClient(b *testing.B, srv *apitest.Server) *client.Client {
	b.Helper()
	c, err := client.New(client.Config{Endpoints: []string{srv.URL}, TLS: srv.PKI.ClientTLS(b, "")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func TestClient_TLSRefusal(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	stranger := apitest.NewPKI(t) // a CA the server does not trust
	cfg := stranger.ClientTLS(t, "admin")
	cfg.RootCAs = srv.PKI.Pool
	c, err := client.New(client.Config{Endpoints: []string{srv.URL}, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Status(t.Context())
	if err == nil || !strings.Contains(err.Error(), "mirrorkv probe 127.0.0.1:") {
		t.Fatalf("Status with a certificate from an unknown CA: %v; want advice to run mirrorkv probe", err)
	}
}
