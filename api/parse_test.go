package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRevisionTag(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`"42"`, 42, true},
		{`42`, 42, true},
		{` "7" `, 7, true},
		{`"9223372036854775807"`, 9223372036854775807, true},
		{`"9223372036854775808"`, 0, false},
		{`"0"`, 0, false},
		{`"-1"`, 0, false},
		{`W/"1"`, 0, false},
		{`*`, 0, false},
		{`"1", "2"`, 0, false},
		{`""`, 0, false},
		{`"1`, 0, false},
		{`+1`, 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseRevisionTag(c.in)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("parseRevisionTag(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
			}
		})
	}
}

func FuzzParseRevisionTag(f *testing.F) {
	for _, s := range []string{`"1"`, `1`, `W/"3"`, `*`, `"99999999999999999999"`, `"-5"`, "", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rev, err := parseRevisionTag(s)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadRequest {
				t.Fatalf("parseRevisionTag(%q): error %v is not a 400", s, err)
			}
			return
		}
		if rev <= 0 {
			t.Fatalf("parseRevisionTag(%q) = %d, want a positive revision", s, rev)
		}
		// An accepted tag round-trips through the form the server sends in ETag.
		if again, err := parseRevisionTag(`"` + strconv.FormatInt(rev, 10) + `"`); err != nil || again != rev {
			t.Fatalf("ETag of %d does not parse back: %d, %v", rev, again, err)
		}
	})
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a/../b", "..", ".", "a//b", "/a", "a/", "a\x00b", "\xff", strings.Repeat("k", 1025)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := validateKey(key, DefaultMaxKeyBytes)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("validateKey(%q): %v is not a 400 with a message", key, err)
			}
			return
		}
		if key == "" || len(key) > DefaultMaxKeyBytes || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
			t.Fatalf("validateKey accepted %q", key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("validateKey accepted %q with segment %q", key, seg)
			}
		}
	})
}

func FuzzDecodeMember(f *testing.F) {
	for _, s := range []string{
		`{"name":"m2","memberAddr":"10.0.0.2:7001","dn":"CN=m2"}`,
		`{"name":"m2","memberAddr":"10.0.0.2:7001","dn":"CN=m2","clientURL":"https://10.0.0.2:8001","async":true}`,
		`{"name":"m2","memberAddr":"10.0.0.2:7001","dn":"CN=m2"}{}`,
		`{"name":"","memberAddr":":","dn":""}`,
		`{"nom":"x"}`, `[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeMember(bytes.NewReader(body))
		if err != nil {
			if e, ok := errors.AsType[*Error](err); !ok || e.Status != http.StatusBadRequest {
				t.Fatalf("decodeMember(%q): %v is not a 400", body, err)
			}
			return
		}
		if checkName(m.Name) != nil || m.MemberAddr == "" || strings.TrimSpace(m.DN) == "" {
			t.Fatalf("decodeMember(%q) accepted %+v", body, m)
		}
	})
}

func TestLevelOf(t *testing.T) {
	cases := []struct {
		name string
		uris []string
		want level
	}{
		{"no URI", nil, levelNone},
		{"other URI only", []string{"spiffe://example/x"}, levelNone},
		{"readwrite", []string{"urn:mirrorkv:access:readwrite", "spiffe://example/x"}, levelReadWrite},
		{"older role URI", []string{"urn:mirrorkv:role:readwrite"}, levelReadWrite},
		{"both spellings", []string{"urn:mirrorkv:access:admin", "urn:mirrorkv:role:admin"}, levelNone},
		{"admin", []string{"urn:mirrorkv:access:admin"}, levelAdmin},
		{"readonly", []string{"urn:mirrorkv:access:readonly"}, levelReadOnly},
		{"unknown role", []string{"urn:mirrorkv:role:root"}, levelNone},
		{"upper case", []string{"urn:mirrorkv:role:ADMIN"}, levelAdmin},
		{"empty role", []string{"urn:mirrorkv:role:"}, levelNone},
		{"two roles", []string{"urn:mirrorkv:role:admin", "urn:mirrorkv:role:readonly"}, levelNone},
		// URN scheme and namespace are case-insensitive: a case variant is the same role,
		// never "no role" (which once meant readwrite).
		{"case variant namespace", []string{"urn:MirrorKV:role:readonly"}, levelReadOnly},
		{"case variant scheme", []string{"URN:mirrorkv:ROLE:readonly"}, levelReadOnly},
		{"case variant with a second role", []string{"urn:MIRRORKV:role:readonly", "urn:mirrorkv:role:admin"}, levelNone},
		{"query part", []string{"urn:mirrorkv:role:admin?x=1"}, levelNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, _ := levelOf(certWithURIs(t, c.uris...)); got != c.want {
				t.Fatalf("levelOf = %s, want %s", got, c.want)
			}
		})
	}
}
