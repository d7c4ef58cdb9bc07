package client_test

import (
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

func TestClient_Txn(t *testing.T) {
	srv := apitest.Start(t, api.Config{MaxTxnOps: 4}, nil)
	c := newClient(t, srv.PKI, "readwrite", srv.URL)
	ctx := t.Context()
	a, err := c.Put(ctx, "acct/a", []byte("100"))
	if err != nil {
		t.Fatal(err)
	}
	move := client.Txn{
		Compare: []wire.Compare{client.CompareRevision("acct/a", "=", a), client.KeyAbsent("acct/b"), client.CompareValue("acct/a", []byte("100"))},
		Then:    []wire.TxnOp{client.TxnPut("acct/a", []byte("70")), client.TxnPut("acct/b", []byte("30"))},
		Else:    []wire.TxnOp{client.TxnDelete("nope")},
	}
	res, err := c.Txn(ctx, move)
	want := client.TxnResult{Succeeded: true, Revision: a + 1, Results: []wire.OpResult{
		{Op: "put", Key: "acct/a", Revision: a + 1}, {Op: "put", Key: "acct/b", Revision: a + 1}}}
	if err != nil || !reflect.DeepEqual(res, want) {
		t.Fatalf("Txn = %+v, %v; want %+v", res, err, want)
	}
	if v, rev, err := c.Get(ctx, "acct/b"); err != nil || string(v) != "30" || rev != a+1 {
		t.Fatalf("Get(acct/b) = %q at %d, %v; want 30 at %d", v, rev, err, a+1)
	}
	res, err = c.Txn(ctx, move)
	want = client.TxnResult{Succeeded: false, Revision: a + 1, Results: []wire.OpResult{{Op: "delete", Key: "nope"}}}
	if err != nil || !reflect.DeepEqual(res, want) {
		t.Fatalf("second Txn = %+v, %v; want %+v", res, err, want)
	}

	t.Run("refused", func(t *testing.T) {
		big := client.Txn{Then: []wire.TxnOp{client.TxnPut("1", nil), client.TxnPut("2", nil), client.TxnPut("3", nil), client.TxnPut("4", nil), client.TxnPut("5", nil)}}
		_, err := c.Txn(ctx, big)
		e, ok := errors.AsType[*client.Error](err)
		if !ok || e.Status != http.StatusBadRequest || e.Reason.Code != 401 {
			t.Fatalf("Txn of 5 writes with a limit of 4: %v; want 400 with reason 401", err)
		}
	})
	t.Run("readonly", func(t *testing.T) {
		ro := newClient(t, srv.PKI, "readonly", srv.URL)
		if _, err := ro.Txn(ctx, move); err == nil {
			t.Fatal("a readonly client ran a txn")
		}
	})
}
