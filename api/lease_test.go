package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// The store is what the lease listing reads in production.
var _ api.LeaseReader = (*store.Store)(nil)

func (r reply) lease(t *testing.T) wire.Lease {
	t.Helper()
	var l wire.Lease
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("body %q is not a wire.Lease: %v", r.body, err)
	}
	return l
}

func (f *fixture) wantReason(t *testing.T, r reply, status int, code reason.Code) {
	t.Helper()
	f.want(t, r, status)
	if got := r.wireError(t).Reason.Code; got != int(code) {
		t.Fatalf("reason %d, want %d; body %s", got, code, r.body)
	}
}

func TestLeases(t *testing.T) {
	f := newFixture(t, api.Config{MaxLeases: 3})
	g := f.do(t, "readwrite", "POST", "/v1/leases", `{"ttl": 1}`)
	f.want(t, g, http.StatusCreated)
	l := g.lease(t)
	if l.ID <= 0 || l.TTL != api.MinLeaseTTL {
		t.Fatalf("grant of 1s = %+v, want an ID and the minimum TTL %d", l, api.MinLeaseTTL)
	}
	id := strconv.FormatInt(l.ID, 10)

	t.Run("put with lease", func(t *testing.T) {
		f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/a?lease="+id, "1"), http.StatusOK)
		f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/b?lease="+id, "1"), http.StatusOK)
		f.wantReason(t, f.do(t, "readwrite", "PUT", "/v1/kv/c?lease=99999", "1"), http.StatusNotFound, reason.LeaseNotFound)
		f.wantReason(t, f.do(t, "readwrite", "PUT", "/v1/kv/c?lease=x", "1"), http.StatusBadRequest, reason.BadLeaseID)
		f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/c?lease=1&other=2", "1"), http.StatusBadRequest)
		f.want(t, f.do(t, "readonly", "PUT", "/v1/kv/c?lease="+id, "1"), http.StatusForbidden)
	})
	t.Run("get and list", func(t *testing.T) {
		r := f.do(t, "readonly", "GET", "/v1/leases/"+id, "")
		f.want(t, r, http.StatusOK)
		if got := r.lease(t); !reflect.DeepEqual(got.Keys, []string{"a", "b"}) || got.KeyCount != 2 {
			t.Fatalf("GET lease = %+v", got)
		}
		r = f.do(t, "readonly", "GET", "/v1/leases", "")
		f.want(t, r, http.StatusOK)
		var ll wire.LeaseList
		if err := json.Unmarshal(r.body, &ll); err != nil || len(ll.Leases) != 1 || ll.Leases[0].KeyCount != 2 {
			t.Fatalf("GET /v1/leases = %s, %v", r.body, err)
		}
		f.wantReason(t, f.do(t, "readonly", "GET", "/v1/leases/12345", ""), http.StatusNotFound, reason.LeaseNotFound)
	})
	t.Run("keep-alive returns the TTL", func(t *testing.T) {
		r := f.do(t, "readwrite", "POST", "/v1/leases/"+id+"/keepalive", "")
		f.want(t, r, http.StatusOK)
		if got := r.lease(t); got.ID != l.ID || got.TTL != api.MinLeaseTTL {
			t.Fatalf("keep-alive = %+v", got)
		}
		f.wantReason(t, f.do(t, "readwrite", "POST", "/v1/leases/12345/keepalive", ""), http.StatusNotFound, reason.LeaseNotFound)
		f.want(t, f.do(t, "readonly", "POST", "/v1/leases/"+id+"/keepalive", ""), http.StatusForbidden)
	})
	t.Run("revoke deletes the keys in one revision", func(t *testing.T) {
		r := f.do(t, "readwrite", "DELETE", "/v1/leases/"+id, "")
		f.want(t, r, http.StatusOK)
		got := r.lease(t)
		if !reflect.DeepEqual(got.Keys, []string{"a", "b"}) || got.Revision == 0 || r.header.Get(wire.HeaderRevision) != strconv.FormatInt(got.Revision, 10) {
			t.Fatalf("revoke = %+v, revision header %q", got, r.header.Get(wire.HeaderRevision))
		}
		f.want(t, f.do(t, "readonly", "GET", "/v1/kv/a", ""), http.StatusNotFound)
		f.wantReason(t, f.do(t, "readwrite", "DELETE", "/v1/leases/"+id, ""), http.StatusNotFound, reason.LeaseNotFound)
	})
	t.Run("limit", func(t *testing.T) {
		for range 3 {
			f.want(t, f.do(t, "readwrite", "POST", "/v1/leases", `{"ttl": 60}`), http.StatusCreated)
		}
		f.wantReason(t, f.do(t, "readwrite", "POST", "/v1/leases", `{"ttl": 60}`), http.StatusTooManyRequests, reason.TooManyLeases)
	})
	t.Run("bad grants", func(t *testing.T) {
		for _, body := range []string{``, `{}`, `{"ttl": 0}`, `{"ttl": -1}`, `{"ttl": 2592001}`, `{"ttl": "60"}`, `{"ttl": 60, "id": 3}`, `{"ttl": 60} {}`, `[60]`} {
			f.wantReason(t, f.do(t, "readwrite", "POST", "/v1/leases", body), http.StatusBadRequest, reason.BadLeaseTTL)
		}
		f.want(t, f.do(t, "readonly", "POST", "/v1/leases", `{"ttl": 60}`), http.StatusForbidden)
	})
}

func FuzzParseLeaseGrant(f *testing.F) {
	for _, s := range []string{`{"ttl": 60}`, `{"ttl": 1}`, `{}`, `{"ttl": 1e3}`, `{"ttl": 9223372036854775808}`, `{"ttl":60}x`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ttl, err := api.ParseLeaseGrant(body)
		if err != nil {
			if e, ok := errors.AsType[*api.Error](err); !ok || e.Reason != reason.BadLeaseTTL {
				t.Fatalf("ParseLeaseGrant(%q) = %v, want a BadLeaseTTL error", body, err)
			}
			return
		}
		if ttl < api.MinLeaseTTL || ttl > 30*24*3600 {
			t.Fatalf("ParseLeaseGrant(%q) = %d", body, ttl)
		}
	})
}

func FuzzParseLeaseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "01", "+1", "9223372036854775807", "9223372036854775808", "", "1x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := api.ParseLeaseID(s)
		if err == nil && (id <= 0 || strconv.FormatInt(id, 10) != s) {
			t.Fatalf("ParseLeaseID(%q) = %d", s, id)
		}
	})
}

func TestLeases_Txn(t *testing.T) {
	f := newFixture(t, api.Config{})
	l := f.do(t, "readwrite", "POST", "/v1/leases", `{"ttl": 60}`).lease(t)
	id := strconv.FormatInt(l.ID, 10)
	r := f.do(t, "readwrite", "POST", "/v1/txn", `{"then":[{"op":"put","key":"a","value":"1","lease":`+id+`},{"op":"put","key":"b","value":"1"}]}`)
	f.want(t, r, http.StatusOK)
	if got := f.do(t, "readonly", "GET", "/v1/leases/"+id, "").lease(t); !reflect.DeepEqual(got.Keys, []string{"a"}) {
		t.Fatalf("keys after a txn put with the lease = %q", got.Keys)
	}
	f.wantReason(t, f.do(t, "readwrite", "POST", "/v1/txn", `{"then":[{"op":"put","key":"c","lease":99999}]}`), http.StatusNotFound, reason.LeaseNotFound)
	f.wantReason(t, f.do(t, "readwrite", "POST", "/v1/txn", `{"then":[{"op":"delete","key":"a","lease":`+id+`}]}`), http.StatusBadRequest, reason.BadTxn)
	f.wantReason(t, f.do(t, "readwrite", "POST", "/v1/txn", `{"then":[{"op":"put","key":"a","lease":-1}]}`), http.StatusBadRequest, reason.BadTxn)
}
