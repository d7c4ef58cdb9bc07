package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

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
	lease, err := putLeaseParam(r)
	if err != nil {
		return err
	}
	cond, err := parseCondition(r.Header, true)
	if err != nil {
		return err
	}
	value, err := s.readValue(w, r)
	if err != nil {
		return err
	}
	res, err := s.grp.Apply(r.Context(), store.Command{Op: store.OpPut, Key: key, Value: value, HasIf: cond.has, IfRevision: cond.rev, Lease: lease})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return leaseError(err)
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
	kv, who, held, err := s.getLarge(r, key)
	if err != nil {
		return err
	}
	defer s.reads.release(who, held)
	if held > 0 {
		s.writeDeadline(w)
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

// getLarge reads key and, when its value is large, takes the value's bytes from the read
// gate for the client who, which it returns with the bytes held for the caller to release.
// A read that must wait for the gate lets go of the value meanwhile and reads the key again
// once it has room, so waiting reads hold nothing.
func (s *Server) getLarge(r *http.Request, key string) (kv store.KV, who string, held int64, err error) {
	kv, err = s.local.Get(key)
	if err != nil || len(kv.Value) < largeValue {
		return kv, "", 0, err
	}
	who = clientKey(r)
	if held, ok := s.reads.tryGrow(who, 0, int64(len(kv.Value))); ok {
		return kv, who, held, nil
	}
	n := int64(len(kv.Value))
	kv = store.KV{}
	if held, err = s.reads.acquire(r.Context(), who, n); err != nil {
		return kv, "", 0, err
	}
	if kv, err = s.local.Get(key); err != nil {
		s.reads.release(who, held)
		return kv, "", 0, err
	}
	// The key may have changed while the read waited.
	held, ok := s.reads.tryGrow(who, held, int64(len(kv.Value)))
	if !ok {
		s.reads.release(who, held)
		return store.KV{}, "", 0, busy(int64(len(kv.Value)), s.reads.size)
	}
	return kv, who, held, nil
}

// writeDeadline gives a large read LargeReadTimeout to reach its client: a client that does
// not read its response would otherwise keep the read's bytes from the gate for good.
func (s *Server) writeDeadline(w http.ResponseWriter) {
	// Only a writer without deadlines (a test's recorder) refuses: nothing to bound there.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.LargeReadTimeout))
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

// listKV serves a listing of at most ?limit keys and MaxListBytes of keys and values. The
// listing's bytes are taken from the read gate before the store copies them, and the
// response is encoded as it is written, so a listing holds about MaxListBytes at most.
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
	// A listing of a few keys needs less than MaxListBytes: at most limit+1 keys and values
	// of the largest size a client may write.
	budget := min(int64(s.cfg.MaxListBytes), int64(limit+1)*(int64(s.cfg.MaxKeyBytes)+s.cfg.MaxValueBytes))
	who := clientKey(r)
	held, err := s.reads.acquire(r.Context(), who, budget)
	if err != nil {
		return err
	}
	defer func() { s.reads.release(who, held) }()
	rev := s.local.Revision()
	// One key past the limit tells whether there is more, and which key comes next.
	kvs, more, err := s.local.List(store.Range{Prefix: q.Get("prefix"), Start: q.Get("start"),
		Limit: limit + 1, MaxBytes: int(held)})
	if err != nil {
		return err
	}
	var next string
	if len(kvs) > limit {
		next = kvs[limit].Key
		kvs[limit] = store.KV{} // its value is not sent: let it go
		kvs, more = kvs[:limit], true
	} else if more && len(kvs) > 0 {
		// The byte bound cut the listing: continue right after the last key.
		next = kvs[len(kvs)-1].Key + "\x00"
	}
	used := int64(0)
	for _, kv := range kvs {
		used += int64(len(kv.Key) + len(kv.Value))
	}
	s.reads.release(who, held-min(used, held)) // give back what the listing did not fill
	held = min(used, held)
	if stale {
		w.Header()[wire.HeaderStale] = s.staleTrue
	}
	setHeaders(w.Header(), 0, rev, -1)
	s.writeDeadline(w)
	s.writeList(w, rev, kvs, more, next)
	return nil
}

// writeList writes a listing as json.Encoder would write the wire.List, one key at a time
// and values base64-encoded straight into the response: neither the response nor one
// encoded value ever exists whole, and each value can be collected once it is sent.
func (s *Server) writeList(w http.ResponseWriter, rev int64, kvs []store.KV, more bool, next string) {
	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	buf.Reset()
	lw := listWriter{w: w, buf: buf}
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	buf.WriteString(`{"revision":`)
	buf.Write(strconv.AppendInt(buf.AvailableBuffer(), rev, 10))
	buf.WriteString(`,"kvs":[`)
	for i := range kvs {
		kv := &kvs[i]
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"key":`)
		appendJSONString(buf, kv.Key)
		buf.WriteString(`,"value":`)
		lw.base64(kv.Value)
		buf.WriteString(`,"revision":`)
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), kv.Revision, 10))
		buf.WriteByte('}')
		*kv = store.KV{}
		if lw.flushFull(); lw.err != nil {
			return // the client is gone
		}
	}
	buf.WriteString(`],"more":`)
	buf.WriteString(strconv.FormatBool(more))
	if next != "" {
		buf.WriteString(`,"next":`)
		appendJSONString(buf, next)
	}
	buf.WriteString("}\n")
	lw.flush() // a failed write means the client is gone: nothing to do
}

// listFlushBytes is how much of a listing writeList gathers before writing it out.
const listFlushBytes = 32 << 10

// listWriter writes a listing gathered in buf to w in pieces of about listFlushBytes. The
// first write error sticks.
type listWriter struct {
	w   io.Writer
	buf *bytes.Buffer
	err error
}

func (lw *listWriter) flushFull() {
	if lw.buf.Len() >= listFlushBytes {
		lw.flush()
	}
}

func (lw *listWriter) flush() {
	if lw.err == nil && lw.buf.Len() > 0 {
		_, lw.err = lw.w.Write(lw.buf.Bytes())
	}
	lw.buf.Reset()
}

// base64 writes v as encoding/json writes a []byte: null when nil, else standard base64 in
// quotes. It encodes in pieces whose length is a multiple of 3, which then join without
// padding, flushing between them.
func (lw *listWriter) base64(v []byte) {
	if v == nil {
		lw.buf.WriteString("null")
		return
	}
	const piece = 3 << 10
	lw.buf.WriteByte('"')
	for len(v) > 0 && lw.err == nil {
		n := min(len(v), piece)
		lw.buf.Write(base64.StdEncoding.AppendEncode(lw.buf.AvailableBuffer(), v[:n]))
		v = v[n:]
		lw.flushFull()
	}
	lw.buf.WriteByte('"')
}

// appendJSONString writes s as a JSON string exactly as encoding/json does. Keys are mostly
// plain ASCII, which is copied as is; anything else takes encoding/json's own path.
func appendJSONString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
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
