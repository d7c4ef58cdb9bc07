package api

import (
	"errors"
	"net/http"
	"testing"
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
