package api_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// GET /v1/backup: admin only, primary only; the stream is the group's snapshot as it is,
// and one the member cannot finish ends without its last chunk, so the client sees an error
// rather than a short copy.
func TestBackup(t *testing.T) {
	f := newFixture(t, api.Config{Group: "g1"})
	snapshot := bytes.Repeat([]byte("snapshot"), 10000)
	f.srv.Group.SetBackup(snapshot, false)
	t.Run("admin", func(t *testing.T) {
		r := f.do(t, "admin", "GET", "/v1/backup", "")
		f.want(t, r, http.StatusOK)
		if !bytes.Equal(r.body, snapshot) || r.header.Get(wire.HeaderGroup) != "g1" {
			t.Fatalf("%d bytes, group %q; want the %d bytes of the snapshot and group g1", len(r.body), r.header.Get(wire.HeaderGroup), len(snapshot))
		}
	})
	for _, role := range []string{"", "none", "readonly", "readwrite"} {
		t.Run("refused to "+role, func(t *testing.T) {
			f.want(t, f.do(t, role, "GET", "/v1/backup", ""), http.StatusForbidden)
		})
	}
	t.Run("not the primary", func(t *testing.T) {
		f.srv.Group.SetPrimaryURL("https://10.0.0.2:8001")
		f.srv.Group.Fail(reason.Wrap(reason.NotPrimary, errors.New("a standby")))
		defer f.srv.Group.Fail(nil)
		r := f.do(t, "admin", "GET", "/v1/backup", "")
		f.want(t, r, http.StatusServiceUnavailable)
		if got := r.header.Get(wire.HeaderPrimary); got != "https://10.0.0.2:8001" {
			t.Errorf("%s = %q, want the primary's URL", wire.HeaderPrimary, got)
		}
	})
	t.Run("cut short", func(t *testing.T) {
		f.srv.Group.SetBackup(snapshot, true)
		defer f.srv.Group.SetBackup(snapshot, false)
		req, err := http.NewRequestWithContext(t.Context(), "GET", f.srv.URL+"/v1/backup", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.clients["admin"].Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Fatal("a stream the member could not finish read as complete")
		}
	})
}

// GET /v1/members reads like a linearizable read, through a read index, so that a change
// acknowledged before is in the list wherever the request lands; ?stale=true does not.
func TestMembers_ReadIndex(t *testing.T) {
	f := newFixture(t, api.Config{})
	before := f.srv.Group.Calls("ReadIndex")
	f.want(t, f.do(t, "readonly", "GET", "/v1/members", ""), http.StatusOK)
	s := f.do(t, "readonly", "GET", "/v1/members?stale=true", "")
	f.want(t, s, http.StatusOK)
	if s.header.Get(wire.HeaderStale) != "true" {
		t.Errorf("stale member list without %s: true", wire.HeaderStale)
	}
	if got := f.srv.Group.Calls("ReadIndex") - before; got != 1 {
		t.Errorf("ReadIndex called %d times for one linearizable and one stale list, want 1", got)
	}
	f.want(t, f.do(t, "readonly", "GET", "/v1/members?stale=maybe", ""), http.StatusBadRequest)
}

// A backup client that stops reading is cut off once LargeReadTimeout passes without
// progress, so that it cannot keep the snapshot's read transaction open for good.
func TestBackup_SlowClientCut(t *testing.T) {
	f := newFixture(t, api.Config{LargeReadTimeout: 200 * time.Millisecond})
	f.srv.Group.SetBackup(bytes.Repeat([]byte("s"), 64<<20), false)
	req, err := http.NewRequestWithContext(t.Context(), "GET", f.srv.URL+"/v1/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.clients["admin"].Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(time.Second) // stop reading: the socket buffers fill and the member waits
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Fatalf("a client that stopped reading for 1 s got the whole %d bytes; want it cut off", n)
	}
}
