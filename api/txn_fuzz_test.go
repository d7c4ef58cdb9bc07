package api

import (
	"errors"
	"testing"

	"github.com/mirrorkv/mirrorkv/store"
)

// FuzzParseTxn feeds POST /v1/txn bodies to the parser: it must never panic, must refuse
// with an *Error, and what it accepts must be a command every member decodes.
func FuzzParseTxn(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"compare":[{"key":"a","target":"revision","op":"<","revision":3},{"key":"b","target":"value","value_base64":"AP8="},{"key":"c","target":"absent"}],"then":[{"op":"put","key":"a","value":"1"},{"op":"delete","key":"c"}],"else":[{"op":"put","key":"x"}]}`,
		`{"then":[{"op":"put","key":"k"},{"op":"put","key":"k"}]}`,
		`{"compare":[{"key":"","target":"exists"}]}`,
		`{"then":[{"op":"put","key":"a/../b","value":"v"}]}`,
		`{"compare":[{"key":"k","target":"value","op":">"}]}`,
		`[1,2]`, `{"then":null}`, `{"then":[null]}`,
	} {
		f.Add([]byte(s))
	}
	lim := txnLimits{ops: 8, keyBytes: 64, valueByte: 256}
	f.Fuzz(func(t *testing.T, body []byte) {
		txn, err := parseTxn(body, lim)
		if err != nil {
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Fatalf("parseTxn(%q) = %v, not an *Error", body, err)
			}
			return
		}
		if len(txn.Compares) > lim.ops || len(txn.Then) > lim.ops || len(txn.Else) > lim.ops {
			t.Fatalf("parseTxn(%q) passed the op limit: %+v", body, txn)
		}
		if _, err := store.DecodeCommand(store.EncodeCommand(store.Command{Op: store.OpTxn, Txn: txn})); err != nil {
			t.Fatalf("parseTxn(%q) accepted a txn the store refuses: %v", body, err)
		}
	})
}
