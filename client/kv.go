package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mirrorkv/mirrorkv/wire"
)

// keyPath escapes each slash-separated segment of key, so that keys read naturally in URLs
// and server logs.
func keyPath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v1/kv/" + strings.Join(segs, "/")
}

func etag(rev int64) []string { return []string{`"` + strconv.FormatInt(rev, 10) + `"`} }

// Put sets key to value and returns the key's new revision.
func (c *Client) Put(ctx context.Context, key string, value []byte) (int64, error) {
	return c.put(ctx, key, value, nil)
}

// PutIf sets key to value only if the key is at revision rev; on a mismatch
// IsPreconditionFailed reports true with the current revision.
func (c *Client) PutIf(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	return c.put(ctx, key, value, http.Header{"If-Match": etag(rev)})
}

// Create sets key to value only if the key does not exist.
func (c *Client) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return c.put(ctx, key, value, http.Header{"If-None-Match": {"*"}})
}

func (c *Client) put(ctx context.Context, key string, value []byte, h http.Header) (int64, error) {
	if value == nil {
		value = []byte{}
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, path: keyPath(key), body: value, header: h})
	if err != nil {
		return 0, fmt.Errorf("put %q: %w", key, err)
	}
	return revisionOf(resp.header), nil
}

// GetOption changes how Get reads.
type GetOption func(*getOptions)

type getOptions struct{ stale bool }

// Stale lets any member answer from its own copy, without confirming with the primary: faster
// and available without a primary, but possibly behind.
func Stale() GetOption { return func(o *getOptions) { o.stale = true } }

// Get returns key's value and revision. By default the read is linearizable.
func (c *Client) Get(ctx context.Context, key string, opts ...GetOption) ([]byte, int64, error) {
	var o getOptions
	for _, opt := range opts {
		opt(&o)
	}
	p := keyPath(key)
	if o.stale {
		p += "?stale=true"
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: p, idempotent: true})
	if err != nil {
		return nil, 0, fmt.Errorf("get %q: %w", key, err)
	}
	return resp.body, revisionOf(resp.header), nil
}

// Delete removes key and returns the store's revision after the delete.
func (c *Client) Delete(ctx context.Context, key string) (int64, error) {
	return c.delete(ctx, key, nil)
}

// DeleteIf removes key only if it is at revision rev.
func (c *Client) DeleteIf(ctx context.Context, key string, rev int64) (int64, error) {
	return c.delete(ctx, key, http.Header{"If-Match": etag(rev)})
}

func (c *Client) delete(ctx context.Context, key string, h http.Header) (int64, error) {
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: keyPath(key), header: h})
	if err != nil {
		return 0, fmt.Errorf("delete %q: %w", key, err)
	}
	return revisionOf(resp.header), nil
}

// List returns one page of the keys that start with prefix, from start on (inclusive): at
// most limit keys (0: the server's default of 100) and at most the server's byte bound of
// keys and values (4 MiB by default), but at least one key when any matches. When More is
// set, pass Next as start to continue; ListAll does that itself.
func (c *Client) List(ctx context.Context, prefix, start string, limit int) (wire.List, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if start != "" {
		q.Set("start", start)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	p := "/v1/kv/"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var l wire.List
	resp, err := c.do(ctx, request{method: http.MethodGet, path: p, idempotent: true})
	if err != nil {
		return l, fmt.Errorf("list %q: %w", prefix, err)
	}
	return l, decode(resp, &l)
}

// listPage is the most keys ListAll asks for in one page; the server's byte bound may cut a
// page shorter.
const listPage = 1000

// ListAll yields the keys that start with prefix, in order, page after page, until the
// listing ends or limit keys have been yielded (limit 0: all of them). Each page is read at
// the revision the member had then, so a listing that spans writes may see some of them. A
// failed page ends the sequence with its error.
func (c *Client) ListAll(ctx context.Context, prefix string, limit int) iter.Seq2[wire.KV, error] {
	return func(yield func(wire.KV, error) bool) {
		start, seen := "", 0
		for {
			page := listPage
			if limit > 0 {
				page = min(page, limit-seen)
			}
			l, err := c.List(ctx, prefix, start, page)
			if err != nil {
				yield(wire.KV{}, err)
				return
			}
			for _, kv := range l.KVs {
				if !yield(kv, nil) {
					return
				}
			}
			seen += len(l.KVs)
			if !l.More || len(l.KVs) == 0 || (limit > 0 && seen >= limit) {
				return
			}
			if l.Next <= start {
				yield(wire.KV{}, fmt.Errorf("list %q: the member answered a next key %q that does not move past %q", prefix, l.Next, start))
				return
			}
			start = l.Next
		}
	}
}
