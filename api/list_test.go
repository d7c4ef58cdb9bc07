package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestWriteList checks that the listing written key by key is byte for byte what
// json.Encoder makes of the whole wire.List, so that the wire stays what clients know.
func TestWriteList(t *testing.T) {
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 30000) // crosses listFlushBytes
	for _, tc := range []struct {
		name string
		kvs  []store.KV
		more bool
		next string
	}{
		{"empty", nil, false, ""},
		{"one", []store.KV{{Key: "a", Value: []byte("v"), Revision: 1}}, false, ""},
		{"no value", []store.KV{{Key: "a", Revision: 2}}, true, "b"},
		{"empty value", []store.KV{{Key: "a", Value: []byte{}, Revision: 2}}, false, ""},
		{"base64 tails", []store.KV{{Key: "a", Value: []byte("x")}, {Key: "b", Value: []byte("xy")}, {Key: "c", Value: []byte("xyz")}}, false, ""},
		{"escaped", []store.KV{{Key: "<&>\"\\\u2028é\x01", Value: []byte("x"), Revision: 3}, {Key: "bad\xffutf8", Revision: 4}}, true, "bad\xffutf8\x00"},
		{"large", []store.KV{{Key: "a", Value: big, Revision: 5}, {Key: "b", Value: big, Revision: 6}, {Key: "c", Value: big, Revision: 7}}, true, "c\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := wire.List{Revision: 42, KVs: []wire.KV{}, More: tc.more, Next: tc.next}
			for _, kv := range tc.kvs {
				want.KVs = append(want.KVs, wire.KV{Key: kv.Key, Value: kv.Value, Revision: kv.Revision})
			}
			var wantBody bytes.Buffer
			if err := json.NewEncoder(&wantBody).Encode(&want); err != nil {
				t.Fatal(err)
			}
			s := New(Config{}, nil, nil, nil, nil)
			rec := httptest.NewRecorder()
			s.writeList(rec, 42, tc.kvs, tc.more, tc.next)
			if got := rec.Body.String(); got != wantBody.String() {
				t.Fatalf("streamed listing differs from json.Encoder's:\n got %.300q\nwant %.300q", got, wantBody.String())
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			for i, kv := range tc.kvs {
				if kv.Value != nil || kv.Key != "" {
					t.Errorf("entry %d still holds its value after it was written", i)
				}
			}
		})
	}
}

// FuzzWriteList compares the streamed listing with json.Encoder's for any key and value.
func FuzzWriteList(f *testing.F) {
	f.Add("a", []byte("v"), "b\x00")
	f.Add("\x7f\u2029<script>", []byte{}, "")
	f.Add("bad\xff\xfe", bytes.Repeat([]byte{0xfb}, 3<<10+1), "\t\n\r\b\f")
	s := New(Config{}, nil, nil, nil, nil)
	f.Fuzz(func(t *testing.T, key string, value []byte, next string) {
		kvs := []store.KV{{Key: key, Value: value, Revision: 1}, {Key: next, Revision: 2}}
		want := wire.List{Revision: 3, KVs: []wire.KV{{Key: key, Value: value, Revision: 1}, {Key: next, Revision: 2}}, More: next != "", Next: next}
		var wantBody bytes.Buffer
		if err := json.NewEncoder(&wantBody).Encode(&want); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.writeList(rec, 3, kvs, next != "", next)
		if rec.Body.String() != wantBody.String() {
			t.Fatalf("streamed listing differs from json.Encoder's:\n got %.300q\nwant %.300q", rec.Body.String(), wantBody.String())
		}
	})
}
