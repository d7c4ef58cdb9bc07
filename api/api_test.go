package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// fixture is a served API with one HTTP client per role.
type fixture struct {
	srv     *apitest.Server
	clients map[string]*http.Client // by role; "" is a certificate without a role URI
}

func newFixture(t *testing.T, cfg api.Config) *fixture {
	t.Helper()
	srv := apitest.Start(t, cfg, nil)
	f := &fixture{srv: srv, clients: map[string]*http.Client{}}
	for _, role := range []string{"", "none", "readonly", "readwrite", "admin", "superuser"} {
		tr := &http.Transport{TLSClientConfig: srv.PKI.ClientTLS(t, role)}
		t.Cleanup(tr.CloseIdleConnections)
		f.clients[role] = &http.Client{Transport: tr}
	}
	return f
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) wireError(t *testing.T) wire.Error {
	t.Helper()
	var we wire.Error
	if err := json.Unmarshal(r.body, &we); err != nil {
		t.Fatalf("error body %q is not a wire.Error: %v", r.body, err)
	}
	return we
}

func (f *fixture) do(t *testing.T, role, method, path, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json") // as the CLI and Go client send
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.clients[role].Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, data}
}

func (f *fixture) want(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if got := r.header.Get(wire.HeaderServedBy); got != "m1" {
		t.Errorf("%s = %q, want m1", wire.HeaderServedBy, got)
	}
}

func TestKV(t *testing.T) {
	f := newFixture(t, api.Config{})
	t.Run("put then get", func(t *testing.T) {
		r := f.do(t, "", "PUT", "/v1/kv/app/config", "v1")
		f.want(t, r, http.StatusOK)
		if r.header.Get("ETag") != `"1"` || r.header.Get(wire.HeaderRevision) != "1" {
			t.Errorf("ETag %q revision %q, want \"1\" and 1", r.header.Get("ETag"), r.header.Get(wire.HeaderRevision))
		}
		g := f.do(t, "readonly", "GET", "/v1/kv/app/config", "")
		f.want(t, g, http.StatusOK)
		if string(g.body) != "v1" || g.header.Get("ETag") != `"1"` || g.header.Get(wire.HeaderStale) != "" {
			t.Errorf("got %q ETag %q stale %q", g.body, g.header.Get("ETag"), g.header.Get(wire.HeaderStale))
		}
	})
	t.Run("linearizable read asks for a read index, stale does not", func(t *testing.T) {
		before := f.srv.Group.Calls("ReadIndex")
		f.want(t, f.do(t, "", "GET", "/v1/kv/app/config", ""), http.StatusOK)
		s := f.do(t, "", "GET", "/v1/kv/app/config?stale=true", "")
		f.want(t, s, http.StatusOK)
		if s.header.Get(wire.HeaderStale) != "true" {
			t.Errorf("stale read without %s: true", wire.HeaderStale)
		}
		if got := f.srv.Group.Calls("ReadIndex") - before; got != 1 {
			t.Errorf("ReadIndex called %d times for one linearizable and one stale read, want 1", got)
		}
	})
	t.Run("compare and set", func(t *testing.T) {
		f.want(t, f.do(t, "", "PUT", "/v1/kv/app/config", "v2", "If-Match", `"1"`), http.StatusOK)
		r := f.do(t, "", "PUT", "/v1/kv/app/config", "v3", "If-Match", "1")
		f.want(t, r, http.StatusPreconditionFailed)
		if r.header.Get("ETag") != `"2"` {
			t.Errorf("412 ETag %q, want the current revision \"2\"", r.header.Get("ETag"))
		}
		if we := r.wireError(t); !strings.Contains(we.Error, "revision 2") || we.Fix == "" {
			t.Errorf("412 body %+v: want the current revision and a fix", we)
		}
	})
	t.Run("create only", func(t *testing.T) {
		f.want(t, f.do(t, "", "PUT", "/v1/kv/new", "x", "If-None-Match", "*"), http.StatusCreated)
		f.want(t, f.do(t, "", "PUT", "/v1/kv/new", "y", "If-None-Match", "*"), http.StatusPreconditionFailed)
	})
	t.Run("delete", func(t *testing.T) {
		f.want(t, f.do(t, "", "DELETE", "/v1/kv/new", "", "If-Match", `"1"`), http.StatusPreconditionFailed)
		f.want(t, f.do(t, "", "DELETE", "/v1/kv/new", ""), http.StatusNoContent)
		r := f.do(t, "", "DELETE", "/v1/kv/new", "")
		f.want(t, r, http.StatusNotFound)
		f.want(t, f.do(t, "", "GET", "/v1/kv/new", ""), http.StatusNotFound)
	})
	t.Run("escaped key", func(t *testing.T) {
		f.want(t, f.do(t, "", "PUT", "/v1/kv/a%20b%2Fc", "sp"), http.StatusOK)
		if _, err := f.srv.Group.Get("a b/c"); err != nil {
			t.Errorf("key a%%20b%%2Fc not stored as \"a b/c\": %v", err)
		}
	})
}

func TestList(t *testing.T) {
	f := newFixture(t, api.Config{ListLimit: 2, MaxListLimit: 3})
	for _, k := range []string{"p/a", "p/b", "p/c", "q/a"} {
		f.want(t, f.do(t, "", "PUT", "/v1/kv/"+k, k), http.StatusOK)
	}
	decode := func(r reply) wire.List {
		var l wire.List
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatalf("list body %s: %v", r.body, err)
		}
		return l
	}
	r := f.do(t, "readonly", "GET", "/v1/kv/?prefix=p/", "")
	f.want(t, r, http.StatusOK)
	l := decode(r)
	if len(l.KVs) != 2 || l.KVs[0].Key != "p/a" || !l.More || l.Next != "p/c" || l.Revision != 4 {
		t.Fatalf("first page %+v: want p/a, p/b, more, next p/c, revision 4", l)
	}
	l = decode(f.do(t, "", "GET", "/v1/kv/?prefix=p/&start="+l.Next, ""))
	if len(l.KVs) != 1 || l.KVs[0].Key != "p/c" || string(l.KVs[0].Value) != "p/c" || l.More {
		t.Fatalf("second page %+v: want p/c alone", l)
	}
	f.want(t, f.do(t, "", "GET", "/v1/kv/?limit=4", ""), http.StatusBadRequest)
	f.want(t, f.do(t, "", "GET", "/v1/kv/?prefx=p", ""), http.StatusBadRequest)
}

func TestPermissions(t *testing.T) {
	f := newFixture(t, api.Config{})
	f.want(t, f.do(t, "", "PUT", "/v1/kv/k", "v"), http.StatusOK)
	routes := []struct{ method, path, body, need string }{
		{"GET", "/v1/kv/k", "", "readonly"},
		{"GET", "/v1/kv/", "", "readonly"},
		{"GET", "/v1/status", "", "readonly"},
		{"GET", "/v1/members", "", "readonly"},
		{"GET", "/healthz", "", "readonly"},
		{"GET", "/metrics", "", "readonly"},
		{"PUT", "/v1/kv/k", "v", "readwrite"},
		{"DELETE", "/v1/kv/gone", "", "readwrite"},
		{"POST", "/v1/members", `{"name":"m9","memberAddr":"10.0.0.9:7001","dn":"CN=m9"}`, "admin"},
		{"POST", "/v1/members/m1/promote", "", "admin"},
		{"POST", "/v1/members/m1/transfer", "", "admin"},
		{"POST", "/v1/members/m1/prefer", "", "admin"},
		{"DELETE", "/v1/preferred", "", "admin"},
		{"DELETE", "/v1/members/m9", "", "admin"},
	}
	rank := map[string]int{"superuser": 0, "none": 0, "readonly": 1, "readwrite": 2, "admin": 3}
	for _, role := range []string{"superuser", "none", "readonly", "readwrite", "admin"} {
		for _, rt := range routes {
			t.Run(role+" "+rt.method+" "+rt.path, func(t *testing.T) {
				r := f.do(t, role, rt.method, rt.path, rt.body)
				if rank[role] >= rank[rt.need] {
					if r.status == http.StatusForbidden {
						t.Fatalf("role %q refused: %s", role, r.body)
					}
					return
				}
				f.want(t, r, http.StatusForbidden)
				we := r.wireError(t)
				if !strings.Contains(we.Fix, "mirrorkv ca issue --client --access "+rt.need) {
					t.Errorf("fix %q does not say how to get the %s role", we.Fix, rt.need)
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		code       reason.Code
		retryAfter string
	}{
		{"no primary", reason.Wrap(reason.NoPrimary, errors.New("election")), http.StatusServiceUnavailable, reason.NoPrimary, "1"},
		{"timeout", reason.Wrap(reason.Timeout, errors.New("apply")), http.StatusGatewayTimeout, reason.Timeout, ""},
		{"leadership lost", reason.Wrap(reason.LeadershipLost, errors.New("x")), http.StatusGatewayTimeout, reason.LeadershipLost, ""},
		{"disk full", reason.Wrap(reason.DiskFull, errors.New("ENOSPC")), http.StatusInsufficientStorage, reason.DiskFull, ""},
		{"shutdown", reason.Wrap(reason.Shutdown, errors.New("bye")), http.StatusServiceUnavailable, reason.Shutdown, "1"},
		{"plain error", errors.New("secret internals"), http.StatusInternalServerError, reason.OK, ""},
	}
	f := newFixture(t, api.Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.srv.Group.Fail(c.err)
			defer f.srv.Group.Fail(nil)
			for _, req := range [][2]string{{"PUT", "/v1/kv/k"}, {"GET", "/v1/kv/k"}, {"GET", "/v1/status"}} {
				r := f.do(t, "", req[0], req[1], "v")
				f.want(t, r, c.status)
				we := r.wireError(t)
				if reason.Code(we.Reason.Code) != c.code || r.header.Get("Retry-After") != c.retryAfter {
					t.Errorf("%s: reason %d Retry-After %q, want %d %q", req, we.Reason.Code, r.header.Get("Retry-After"), c.code, c.retryAfter)
				}
				if strings.Contains(string(r.body), "secret internals") {
					t.Errorf("%s: the cause leaked to the client: %s", req, r.body)
				}
			}
		})
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t, api.Config{MaxKeyBytes: 8, MaxValueBytes: 4})
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"empty key", "PUT", "/v1/kv/", "v", nil, 400},
		{"dot dot", "PUT", "/v1/kv/a/../b", "v", nil, 400},
		{"escaped dot dot", "GET", "/v1/kv/a/%2e%2e/b", "", nil, 400},
		{"empty segment", "PUT", "/v1/kv/a//b", "v", nil, 400},
		{"NUL", "PUT", "/v1/kv/a%00", "v", nil, 400},
		{"bad UTF-8", "PUT", "/v1/kv/%ff", "v", nil, 400},
		{"long key", "PUT", "/v1/kv/123456789", "v", nil, 400},
		{"big value", "PUT", "/v1/kv/k", "12345", nil, 413},
		{"garbage If-Match", "PUT", "/v1/kv/k", "v", []string{"If-Match", "abc"}, 400},
		{"weak If-Match", "PUT", "/v1/kv/k", "v", []string{"If-Match", `W/"1"`}, 400},
		{"zero If-Match", "PUT", "/v1/kv/k", "v", []string{"If-Match", `"0"`}, 400},
		{"If-None-Match tag", "PUT", "/v1/kv/k", "v", []string{"If-None-Match", `"1"`}, 400},
		{"both conditions", "PUT", "/v1/kv/k", "v", []string{"If-Match", "1", "If-None-Match", "*"}, 400},
		{"If-None-Match on delete", "DELETE", "/v1/kv/k", "", []string{"If-None-Match", "*"}, 400},
		{"unknown query", "GET", "/v1/kv/k?x=1", "", nil, 400},
		{"bad stale", "GET", "/v1/kv/k?stale=maybe", "", nil, 400},
		{"unknown route", "GET", "/v2/nothing", "", nil, 404},
		{"wrong method", "PUT", "/v1/status", "", nil, 405},
		{"member unknown field", "POST", "/v1/members", `{"name":"m2","memberAdr":"h:1","dn":"CN=m2"}`, nil, 400},
		{"member bad addr", "POST", "/v1/members", `{"name":"m2","memberAddr":"nohost","dn":"CN=m2"}`, nil, 400},
		{"member bad name", "POST", "/v1/members/a%20b/promote", "", nil, 400},
		{"member missing", "DELETE", "/v1/members/ghost", "", nil, 404},
		// A browser sends these cross-site without a preflight, with the admin certificate.
		{"member as a form", "POST", "/v1/members", `name=m2`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"member as text", "POST", "/v1/members", `{"name":"m2","memberAddr":"h:1","dn":"CN=m2"}`, []string{"Content-Type", "text/plain"}, 415},
		{"promote as a form", "POST", "/v1/members/m1/promote", "", []string{"Content-Type", "multipart/form-data; boundary=x"}, 415},
		{"transfer as text", "POST", "/v1/members/m1/transfer", "", []string{"Content-Type", "text/plain"}, 415},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, "admin", c.method, c.path, c.body, c.hdr...)
			f.want(t, r, c.status)
			if we := r.wireError(t); we.Error == "" {
				t.Errorf("error body without a message: %s", r.body)
			}
		})
	}
	t.Run("big chunked value", func(t *testing.T) {
		// An opaque reader has no known length, so the body goes chunked.
		req, err := http.NewRequestWithContext(t.Context(), "PUT", f.srv.URL+"/v1/kv/k", io.NopCloser(strings.NewReader("12345")))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.clients[""].Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked 5-byte value with a 4-byte limit: %d, want 413", resp.StatusCode)
		}
	})
	if got := f.srv.Group.Calls("Apply"); got != 0 {
		t.Errorf("invalid requests reached the group %d times", got)
	}
}

func TestMembers(t *testing.T) {
	f := newFixture(t, api.Config{})
	m := wire.Member{Name: "m2", MemberAddr: "127.0.0.2:7001", ClientURL: "https://127.0.0.2:8001", DN: "CN=m2,O=mirrorkv"}
	body, _ := json.Marshal(m)
	f.want(t, f.do(t, "admin", "POST", "/v1/members", string(body)), http.StatusCreated)
	var ms []wire.Member
	r := f.do(t, "readonly", "GET", "/v1/members", "")
	f.want(t, r, http.StatusOK)
	if err := json.Unmarshal(r.body, &ms); err != nil || len(ms) != 2 || ms[1] != m {
		t.Fatalf("members %s (%v): want m1 and %+v", r.body, err, m)
	}
	f.want(t, f.do(t, "admin", "POST", "/v1/members/m2/transfer", ""), http.StatusNoContent)
	var st wire.Status
	if err := json.Unmarshal(f.do(t, "", "GET", "/v1/status", "").body, &st); err != nil || st.Primary != "m2" {
		t.Fatalf("after transfer the primary is %q (%v), want m2", st.Primary, err)
	}
	f.want(t, f.do(t, "admin", "POST", "/v1/members/m2/prefer", ""), http.StatusNoContent)
	if err := json.Unmarshal(f.do(t, "", "GET", "/v1/status", "").body, &st); err != nil || st.Preferred != "m2" {
		t.Fatalf("after prefer the preferred member is %q (%v), want m2", st.Preferred, err)
	}
	f.want(t, f.do(t, "admin", "DELETE", "/v1/preferred", ""), http.StatusNoContent)
	st = wire.Status{}
	if err := json.Unmarshal(f.do(t, "", "GET", "/v1/status", "").body, &st); err != nil || st.Preferred != "" {
		t.Fatalf("after withdrawing the preference the preferred member is %q (%v), want none", st.Preferred, err)
	}
	f.want(t, f.do(t, "admin", "DELETE", "/v1/members/m2", ""), http.StatusNoContent)
	f.want(t, f.do(t, "admin", "DELETE", "/v1/members/m2", ""), http.StatusNotFound)
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, api.Config{})
	r := f.do(t, "readonly", "GET", "/healthz", "")
	f.want(t, r, http.StatusOK)
	if string(r.body) != "ok\n" {
		t.Errorf("healthy body %q, want ok", r.body)
	}
	cases := []struct {
		name    string
		role    wire.Role
		primary string
		reason  int
		want    reason.Code
	}{
		{"no primary", wire.RoleUnsync, "", 0, reason.NoPrimary},
		{"catching up", wire.RoleUnsync, "m2", 0, reason.CatchingUp},
		{"own reason", wire.RoleUnsync, "m2", int(reason.DNNotAuthorised), reason.DNNotAuthorised},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.srv.Group.SetStatus(wire.Status{Node: "m1", Role: c.role, Primary: c.primary, Reason: wire.Reason{Code: c.reason}})
			r := f.do(t, "readonly", "GET", "/healthz", "")
			f.want(t, r, http.StatusServiceUnavailable)
			if we := r.wireError(t); reason.Code(we.Reason.Code) != c.want {
				t.Errorf("reason %d, want %d", we.Reason.Code, c.want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, api.Config{})
	f.want(t, f.do(t, "", "PUT", "/v1/kv/k", "v"), http.StatusOK)
	f.want(t, f.do(t, "", "GET", "/v1/kv/missing", ""), http.StatusNotFound)
	r := f.do(t, "readonly", "GET", "/metrics", "")
	f.want(t, r, http.StatusOK)
	for _, want := range []string{
		`mirrorkv_http_requests_total{code="200",method="PUT",route="kv"} 1`,
		`mirrorkv_http_requests_total{code="404",method="GET",route="kv"} 1`,
		`mirrorkv_http_request_duration_seconds_count{method="PUT",route="kv"} 1`,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
