package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

func txnResult(t *testing.T, r reply) wire.TxnResult {
	t.Helper()
	var res wire.TxnResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("txn answer %q: %v", r.body, err)
	}
	return res
}

func TestTxn(t *testing.T) {
	f := newFixture(t, api.Config{})
	f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/acct/a", "100"), http.StatusOK) // rev 1
	f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/acct/b", "0"), http.StatusOK)   // rev 2
	transfer := `{"compare":[{"key":"acct/a","target":"revision","revision":1},{"key":"acct/b","target":"value","value":"0"},{"key":"lock","target":"absent"}],
		"then":[{"op":"put","key":"acct/a","value":"60"},{"op":"put","key":"acct/b","value":"40"},{"op":"delete","key":"nope"}],
		"else":[{"op":"put","key":"failed","value":"1"}]}`

	t.Run("then", func(t *testing.T) {
		r := f.do(t, "readwrite", "POST", "/v1/txn", transfer)
		f.want(t, r, http.StatusOK)
		want := wire.TxnResult{Succeeded: true, Revision: 3, Results: []wire.OpResult{
			{Op: "put", Key: "acct/a", Revision: 3}, {Op: "put", Key: "acct/b", Revision: 3}, {Op: "delete", Key: "nope"}}}
		if got := txnResult(t, r); !reflect.DeepEqual(got, want) {
			t.Fatalf("txn = %+v, want %+v", got, want)
		}
		if got := r.header.Get(wire.HeaderRevision); got != "3" {
			t.Errorf("%s = %q, want 3", wire.HeaderRevision, got)
		}
		if g := f.do(t, "readonly", "GET", "/v1/kv/acct/b", ""); string(g.body) != "40" {
			t.Errorf("acct/b = %q after the txn, want 40", g.body)
		}
	})
	t.Run("else", func(t *testing.T) {
		r := f.do(t, "readwrite", "POST", "/v1/txn", transfer) // acct/a is at 3 now
		f.want(t, r, http.StatusOK)
		want := wire.TxnResult{Succeeded: false, Revision: 4, Results: []wire.OpResult{{Op: "put", Key: "failed", Revision: 4}}}
		if got := txnResult(t, r); !reflect.DeepEqual(got, want) {
			t.Fatalf("txn = %+v, want %+v", got, want)
		}
	})
	t.Run("revision-compares", func(t *testing.T) {
		for _, tc := range []struct {
			op   string
			rev  int64
			want bool
		}{{"=", 3, true}, {"!=", 3, false}, {"<", 4, true}, {"<", 3, false}, {">", 2, true}, {">", 3, false}} {
			body := fmt.Sprintf(`{"compare":[{"key":"acct/a","target":"revision","op":%q,"revision":%d}]}`, tc.op, tc.rev)
			r := f.do(t, "readwrite", "POST", "/v1/txn", body)
			f.want(t, r, http.StatusOK)
			if got := txnResult(t, r).Succeeded; got != tc.want {
				t.Errorf("revision %s %d on a key at 3: succeeded %v, want %v", tc.op, tc.rev, got, tc.want)
			}
		}
	})
	t.Run("deleted", func(t *testing.T) {
		r := f.do(t, "readwrite", "POST", "/v1/txn", `{"compare":[{"key":"failed","target":"exists"}],"then":[{"op":"delete","key":"failed"}]}`)
		f.want(t, r, http.StatusOK)
		if got := txnResult(t, r); !got.Succeeded || !got.Results[0].Deleted || got.Results[0].Revision != got.Revision {
			t.Fatalf("txn = %+v, want the key deleted at the txn's revision", got)
		}
	})
}

func TestTxn_Access(t *testing.T) {
	f := newFixture(t, api.Config{})
	body := `{"then":[{"op":"put","key":"k","value":"v"}]}`
	for _, tc := range []struct {
		role string
		want int
	}{{"none", http.StatusForbidden}, {"readonly", http.StatusForbidden},
		{"readwrite", http.StatusOK}, {"admin", http.StatusOK}} {
		t.Run("role="+tc.role, func(t *testing.T) {
			f.want(t, f.do(t, tc.role, "POST", "/v1/txn", body), tc.want)
		})
	}
	t.Run("GET", func(t *testing.T) {
		f.want(t, f.do(t, "readwrite", "GET", "/v1/txn", ""), http.StatusMethodNotAllowed)
	})
}

func TestTxn_BadBodies(t *testing.T) {
	f := newFixture(t, api.Config{MaxTxnOps: 2, MaxTxnBytes: 512, MaxValueBytes: 16, MaxKeyBytes: 8})
	ops := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf(`{"op":"put","key":"k%d","value":"v"}`, i))
		}
		return strings.Join(parts, ",")
	}
	for _, tc := range []struct {
		name, body string
		status     int
		reason     reason.Code
	}{
		{"not-json", `{"then":`, 400, reason.BadTxn},
		{"array", `[]`, 400, reason.BadTxn},
		{"unknown-field", `{"success":[]}`, 400, reason.BadTxn},
		{"trailing", `{} {}`, 400, reason.BadTxn},
		{"empty-key", `{"then":[{"op":"put","key":""}]}`, 400, reason.BadTxn},
		{"long-key", `{"then":[{"op":"put","key":"123456789"}]}`, 400, reason.BadTxn},
		{"unknown-op", `{"then":[{"op":"range","key":"k"}]}`, 400, reason.BadTxn},
		{"unknown-target", `{"compare":[{"key":"k","target":"version"}]}`, 400, reason.BadTxn},
		{"less-on-value", `{"compare":[{"key":"k","target":"value","op":"<","value":"a"}]}`, 400, reason.BadTxn},
		{"op-on-absent", `{"compare":[{"key":"k","target":"absent","op":"!="}]}`, 400, reason.BadTxn},
		{"negative-revision", `{"compare":[{"key":"k","target":"revision","revision":-1}]}`, 400, reason.BadTxn},
		{"both-values", `{"then":[{"op":"put","key":"k","value":"a","value_base64":"YQ=="}]}`, 400, reason.BadTxn},
		{"delete-value", `{"then":[{"op":"delete","key":"k","value":"a"}]}`, 400, reason.BadTxn},
		{"key-twice", `{"then":[{"op":"put","key":"k"},{"op":"delete","key":"k"}]}`, 400, reason.BadTxn},
		{"large-value", `{"then":[{"op":"put","key":"k","value":"01234567890123456"}]}`, 400, reason.BadTxn},
		{"too-many-then", `{"then":[` + ops(3) + `]}`, 400, reason.TxnTooManyOps},
		{"too-many-compares", `{"compare":[{"key":"a","target":"exists"},{"key":"b","target":"exists"},{"key":"c","target":"exists"}]}`, 400, reason.TxnTooManyOps},
		{"too-large", `{"then":[` + ops(2) + `],"else":[` + ops(2) + `]}` + strings.Repeat(" ", 512), 413, reason.TxnTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "readwrite", "POST", "/v1/txn", tc.body)
			f.want(t, r, tc.status)
			if we := r.wireError(t); we.Reason.Code != int(tc.reason) {
				t.Errorf("reason %d (%s), want %d", we.Reason.Code, we.Error, tc.reason)
			}
		})
	}
	t.Run("base64", func(t *testing.T) {
		r := f.do(t, "readwrite", "POST", "/v1/txn", `{"then":[{"op":"put","key":"bin","value_base64":"AP8="}]}`)
		f.want(t, r, http.StatusOK)
		if g := f.do(t, "readonly", "GET", "/v1/kv/bin", ""); string(g.body) != "\x00\xff" {
			t.Errorf("bin = %q, want 00 ff", g.body)
		}
	})
}
