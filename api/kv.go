package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"

	"github.com/mirrorkv/mirrorkv/internal/arrival"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// setHeaders sets ETag (the key's revision, when keyRev > 0), X-Mirrorkv-Revision (the
// store's) and Content-Length (when length >= 0). Every read and write passes here, so all
// three values are cut from one string and share one slice: two allocations instead of six.
// Direct map writes also skip header-name canonicalisation.
func setHeaders(h http.Header, keyRev, storeRev int64, length int) {
	var buf [64]byte
	b := buf[:0]
	vals := make([]string, 3)
	var spans [3][2]int
	if keyRev > 0 {
		b = append(b, '"')
		b = strconv.AppendInt(b, keyRev, 10)
		b = append(b, '"')
		spans[0] = [2]int{0, len(b)}
	}
	start := len(b)
	b = strconv.AppendInt(b, storeRev, 10)
	spans[1] = [2]int{start, len(b)}
	if length >= 0 {
		start = len(b)
		b = strconv.AppendInt(b, int64(length), 10)
		spans[2] = [2]int{start, len(b)}
	}
	s := string(b)
	for i, name := range [3]string{"Etag", wire.HeaderRevision, "Content-Length"} {
		if sp := spans[i]; sp[1] > sp[0] {
			vals[i] = s[sp[0]:sp[1]]
			h[name] = vals[i : i+1 : i+1]
		}
	}
}

func (s *Server) key(r *http.Request) (string, error) {
	key := r.PathValue("key")
	return key, validateKey(key, s.cfg.MaxKeyBytes)
}

func (s *Server) putKV(w http.ResponseWriter, r *http.Request) error {
	key, err := s.key(r)
	if err != nil {
		return err
	}
	if r.URL.RawQuery != "" {
		if err := checkQuery(r.URL.Query()); err != nil {
			return err
		}
	}
	cond, err := parseCondition(r.Header, true)
	if err != nil {
		return err
	}
	value, err := s.readValue(w, r)
	if err != nil {
		return err
	}
	res, err := s.grp.Apply(r.Context(), store.Command{Op: store.OpPut, Key: key, Value: value, HasIf: cond.has, IfRevision: cond.rev})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return err
	}
	setHeaders(w.Header(), res.Revision, res.Revision, -1)
	if cond.has && cond.rev == 0 {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// readValue reads the body, at most MaxValueBytes. A Content-Length is a claim, not bytes:
// the value grows as the bytes arrive (arrival.ReadFull), so a client that declares a large
// body and sends little costs little. A chunked body goes through a pooled buffer first. The
// value is never pooled itself: the group may hold on to it after Apply returns.
func (s *Server) readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.cfg.MaxValueBytes
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength >= 0 {
		// The server's body reader already stops at Content-Length, checked above.
		value, err := arrival.ReadFull(r.Body, r.ContentLength)
		if err != nil {
			return nil, bodyError(err)
		}
		return value, nil
	}
	body := limitBody(w, r, limit)
	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, bodyError(err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return err
	}
	return &Error{Status: http.StatusBadRequest, Msg: "read the request body", Err: err}
}

// putBuf returns buf to the pool unless a huge listing grew it: keeping that would pin the
// memory for good.
func (s *Server) putBuf(buf *bytes.Buffer) {
	if buf.Cap() <= 4<<20 {
		s.bufs.Put(buf)
	}
}

func (s *Server) getKV(w http.ResponseWriter, r *http.Request) error {
	key, err := s.key(r)
	if err != nil {
		return err
	}
	stale := false
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if err := checkQuery(q, "stale"); err != nil {
			return err
		}
		if stale, err = boolParam(q, "stale"); err != nil {
			return err
		}
	}
	if err := s.readBarrier(r, stale); err != nil {
		return err
	}
	kv, err := s.local.Get(key)
	if err != nil {
		return err
	}
	h := w.Header()
	h["Content-Type"] = s.octetStream
	if stale {
		h[wire.HeaderStale] = s.staleTrue
	}
	setHeaders(h, kv.Revision, s.local.Revision(), len(kv.Value))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(kv.Value)
	if err != nil {
		s.log.Debug("write value", "key", key, "err", err)
	}
	return nil
}

// readBarrier makes a read linearizable unless the client asked for a stale one.
func (s *Server) readBarrier(r *http.Request, stale bool) error {
	if stale {
		return nil
	}
	return s.grp.ReadIndex(r.Context())
}

func (s *Server) deleteKV(w http.ResponseWriter, r *http.Request) error {
	key, err := s.key(r)
	if err != nil {
		return err
	}
	if r.URL.RawQuery != "" {
		if err := checkQuery(r.URL.Query()); err != nil {
			return err
		}
	}
	cond, err := parseCondition(r.Header, false)
	if err != nil {
		return err
	}
	res, err := s.grp.Apply(r.Context(), store.Command{Op: store.OpDelete, Key: key, HasIf: cond.has, IfRevision: cond.rev})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return err
	}
	setHeaders(w.Header(), 0, res.Revision, -1)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listKV(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "prefix", "start", "limit", "stale"); err != nil {
		return err
	}
	limit, err := s.listLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	stale, err := boolParam(q, "stale")
	if err != nil {
		return err
	}
	if err := s.readBarrier(r, stale); err != nil {
		return err
	}
	rev := s.local.Revision()
	kvs, more, err := s.local.List(store.Range{Prefix: q.Get("prefix"), Start: q.Get("start"), Limit: limit + 1})
	if err != nil {
		return err
	}
	out := wire.List{Revision: rev, KVs: make([]wire.KV, 0, min(len(kvs), limit))}
	for i, kv := range kvs {
		if i == limit {
			out.More, out.Next = true, kv.Key
			break
		}
		out.KVs = append(out.KVs, wire.KV{Key: kv.Key, Value: kv.Value, Revision: kv.Revision})
	}
	// The store may also cut the listing below limit+1 on its own.
	if more && !out.More && len(kvs) > 0 {
		out.More, out.Next = true, kvs[len(kvs)-1].Key+"\x00"
	}
	if stale {
		w.Header()[wire.HeaderStale] = s.staleTrue
	}
	setHeaders(w.Header(), 0, rev, -1)
	s.writeJSON(w, http.StatusOK, &out)
	return nil
}

func (s *Server) listLimit(v string) (int, error) {
	if v == "" {
		return s.cfg.ListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, badRequest("?limit=%q: want a positive number", v)
	}
	if n > s.cfg.MaxListLimit {
		return 0, badRequest("?limit=%d is above the maximum of %d; page with ?start=", n, s.cfg.MaxListLimit)
	}
	return n, nil
}
