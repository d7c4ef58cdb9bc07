package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/mirrorkv/mirrorkv/wire"
)

func FuzzParseWatchQuery(f *testing.F) {
	for _, q := range []string{"", "prefix=a/&from=3", "key=a/b&stale", "stale=false&from=9223372036854775807",
		"from=-1", "from=0x10", "prefix=a&key=b", "key=%00", "prefix=%ff%fe", "from=1&from=2", "a=%zz", "key=a/../b"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseWatchQuery(raw, 64)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadRequest {
				t.Fatalf("parseWatchQuery(%q) = %v, want a 400", raw, err)
			}
			return
		}
		if q.from < 0 || len(q.prefix) > 64 {
			t.Fatalf("parseWatchQuery(%q) = %+v", raw, q)
		}
		if q.exact && validateKey(q.prefix, 64) != nil {
			t.Fatalf("parseWatchQuery(%q) accepted the bad key %q", raw, q.prefix)
		}
	})
}

// FuzzEncodeLine checks the hand-written encoding of event lines against encoding/json.
func FuzzEncodeLine(f *testing.F) {
	f.Add("a/b", []byte("v"), int64(3), int64(1), false, "c\"<é\x00", []byte{})
	f.Add("k", []byte(nil), int64(9), int64(0), true, "k2", []byte{0xff, 0})
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, rev, created int64, del bool, k2 string, v2 []byte) {
		typ := wire.EventPut
		if del {
			typ = wire.EventDelete
		}
		resp := &wire.WatchResponse{Revision: rev, Events: []wire.WatchEvent{
			{Type: typ, Key: k1, Value: v1, Revision: rev, Created: created},
			{Type: wire.EventPut, Key: k2, Value: v2, Revision: rev},
		}}
		want, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeLine(resp); string(got) != string(want)+"\n" {
			t.Fatalf("encodeLine = %s\njson       = %s", got, want)
		}
	})
}
