package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

const kvPrefix = "/v1/kv/"

// checkKVPath refuses a key path with an empty, "." or ".." segment. Such paths are not
// clean, so the mux would redirect them elsewhere; a key that names a path traversal is
// refused outright instead, with 400.
func checkKVPath(path string) error {
	rest, ok := strings.CutPrefix(path, kvPrefix)
	if !ok || rest == "" {
		return nil
	}
	return checkSegments(rest)
}

func checkSegments(rest string) error {
	for seg := range strings.SplitSeq(rest, "/") {
		switch seg {
		case "":
			return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("key %q has an empty segment", rest),
				Fix: "keys are segments separated by single slashes, with no leading or trailing slash"}
		case ".", "..":
			return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("key %q has a %q segment", rest, seg),
				Fix: `"." and ".." are not allowed as key segments`}
		}
	}
	return nil
}

// validateKey checks a key that came from the path: not empty, valid UTF-8 without NUL, at
// most max bytes, and clean segments.
func validateKey(key string, max int) error {
	switch {
	case key == "":
		return &Error{Status: http.StatusBadRequest, Msg: "the key is empty", Fix: "put the key after /v1/kv/"}
	case len(key) > max:
		return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("key is %d bytes, longer than the limit of %d", len(key), max)}
	case !utf8.ValidString(key):
		return badRequest("key is not valid UTF-8")
	case strings.IndexByte(key, 0) >= 0:
		return badRequest("key contains a NUL byte")
	}
	return checkSegments(key)
}

// parseRevisionTag reads one entity tag that names a revision: "REV" (quoted, as sent in
// ETag) or a bare REV. Weak tags, lists and "*" are refused: a compare-and-set needs one
// exact revision.
func parseRevisionTag(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "W/") {
		return 0, badRequest("If-Match %q is a weak entity tag; revisions are strong tags like \"42\"", v)
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || len(v) > 19 {
		return 0, badRequest("If-Match %q is not a revision; send If-Match: \"REV\" with the revision from ETag", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, badRequest("If-Match %q is not a revision; send If-Match: \"REV\" with the revision from ETag", v)
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("If-Match %q is not a revision", v),
			Fix: "revisions start at 1; to create a key only if it is absent, send If-None-Match: *"}
	}
	return n, nil
}

// condition is a write's precondition from If-Match / If-None-Match.
type condition struct {
	has bool
	rev int64 // 0: the key must not exist
}

// parseCondition reads the conditional headers of a write. If-None-Match is allowed only on
// PUT (create); giving both headers is refused as ambiguous.
func parseCondition(h http.Header, allowCreate bool) (condition, error) {
	im, inm := h.Values("If-Match"), h.Values("If-None-Match")
	if len(im) > 0 && len(inm) > 0 {
		return condition{}, badRequest("send If-Match or If-None-Match, not both")
	}
	if len(im) > 1 {
		return condition{}, badRequest("send one If-Match header with one revision")
	}
	if len(im) == 1 {
		rev, err := parseRevisionTag(im[0])
		return condition{has: err == nil, rev: rev}, err
	}
	if len(inm) == 0 {
		return condition{}, nil
	}
	if !allowCreate || len(inm) > 1 || strings.TrimSpace(inm[0]) != "*" {
		return condition{}, badRequest("If-None-Match is supported only as If-None-Match: * on PUT (create if absent)")
	}
	return condition{has: true}, nil
}

// checkQuery refuses query parameters a route does not know, so that a typo (?prefx=)
// fails loudly instead of silently listing everything.
func checkQuery(q url.Values, known ...string) error {
	for name := range q {
		ok := false
		for _, k := range known {
			ok = ok || name == k
		}
		if !ok {
			if len(known) == 0 {
				return badRequest("unknown query parameter %q; this route takes none", name)
			}
			return badRequest("unknown query parameter %q; this route takes %s", name, strings.Join(known, ", "))
		}
	}
	return nil
}

// boolParam reads an optional boolean query parameter.
func boolParam(q url.Values, name string) (bool, error) {
	v, ok := q[name]
	if !ok {
		return false, nil
	}
	if len(v) != 1 {
		return false, badRequest("give ?%s once", name)
	}
	if v[0] == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return false, badRequest("?%s=%q: want true or false", name, v[0])
	}
	return b, nil
}
