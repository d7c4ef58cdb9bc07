package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/arrival"
	"github.com/mirrorkv/mirrorkv/store"
)

// Member RPC frames: a 4-byte big-endian length, then that many bytes: one kind byte (the
// method of a request, the status of a response) and the payload. One request at a time per
// conn, so no request IDs.
const (
	// maxFrame bounds one frame; a forwarded command carries at most one value (1 MiB by
	// default), so this leaves room while refusing absurd lengths before allocating.
	maxFrame = 64 << 20
	// frameHeader is the length prefix plus the kind byte.
	frameHeader = 5
)

// Methods of the member RPC service.
const (
	methodApply byte = iota + 1
	methodReadIndex
	methodSelf
	methodMembers
	// 5 to 8 carried membership and leadership changes; they are admin operations now,
	// run on the primary only, and the numbers are not reused.
)

// Response kinds.
const (
	respOK  byte = 0
	respErr byte = 1
)

// writeFrame writes one frame and flushes it.
func writeFrame(w *bufio.Writer, kind byte, payload []byte) error {
	if len(payload)+1 > maxFrame {
		return fmt.Errorf("write frame of %d bytes: %w", len(payload), ErrFrameTooLarge)
	}
	var hdr [frameHeader]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)+1))
	hdr[4] = kind
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame of at most limit bytes. io.EOF means the peer closed the conn
// between frames; a frame cut short is io.ErrUnexpectedEOF.
func readFrame(r *bufio.Reader, limit int) (kind byte, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, fmt.Errorf("read frame: empty: %w", ErrBadFrame)
	}
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("read frame of %d bytes (limit %d): %w", n, limit, ErrFrameTooLarge)
	}
	// The length is the peer's claim: the body grows as it arrives, so a peer that declares
	// maxFrame and sends nothing costs arrival.FirstStep, not maxFrame.
	buf, err := arrival.ReadFull(r, int64(n))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the header promised a body
		}
		return 0, nil, fmt.Errorf("read frame body: %w", err)
	}
	return buf[0], buf[1:], nil
}

// enc appends the fields of a payload.
type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.varint(0)
		return
	}
	e.varint(t.UnixNano())
}

// dec reads the fields of a payload; the first failure sticks and zero values follow.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = ErrBadFrame
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) bool() bool {
	if len(d.b) == 0 {
		d.fail()
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail()
	}
	return v == 1
}

func (d *dec) time() time.Time {
	ns := d.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// count reads a list length, refusing one that cannot fit in what is left (each element
// takes at least min bytes), so a forged count cannot make the caller allocate.
func (d *dec) count(minElem int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minElem) || n > math.MaxInt32 {
		d.fail()
		return 0
	}
	return int(n)
}

// done reports the sticky error, or trailing bytes as malformed.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = ErrBadFrame
	}
	return d.err
}

func (e *enc) member(m store.Member) {
	e.str(m.Name)
	e.str(m.MemberAddr)
	e.str(m.ClientURL)
	e.str(m.DN)
	e.bool(m.Async)
}

func (d *dec) member() store.Member {
	return store.Member{Name: d.str(), MemberAddr: d.str(), ClientURL: d.str(), DN: d.str(), Async: d.bool()}
}

func encodeMembers(ms []store.Member) []byte {
	var e enc
	e.uvarint(uint64(len(ms)))
	for _, m := range ms {
		e.member(m)
	}
	return e.b
}

func decodeMembers(p []byte) ([]store.Member, error) {
	ms, _, err := decodeMembersAt(p)
	return ms, err
}

// membersAtRequest is the payload of a members request that asks for the answering member's
// applied index after the list. A member of an older release ignores the payload and sends
// the list alone, so the index is optional on the way back.
var membersAtRequest = []byte{1}

// encodeMembersAt is encodeMembers followed by the raft index the list reflects.
func encodeMembersAt(ms []store.Member, applied uint64) []byte {
	e := enc{b: encodeMembers(ms)}
	e.uvarint(applied)
	return e.b
}

// decodeMembersAt decodes either form; applied is 0 when the answer has no index.
func decodeMembersAt(p []byte) (ms []store.Member, applied uint64, err error) {
	d := dec{b: p}
	n := d.count(5)
	ms = make([]store.Member, 0, n)
	for range n {
		ms = append(ms, d.member())
	}
	if d.err == nil && len(d.b) > 0 {
		applied = d.uvarint()
	}
	if err := d.done(); err != nil {
		return nil, 0, fmt.Errorf("decode members: %w", err)
	}
	return ms, applied, nil
}
