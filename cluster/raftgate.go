package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Raft RPC types on the wire (hashicorp/raft net_transport.go): one byte, then the request
// as a msgpack map; an InstallSnapshot request is followed by Size bytes of snapshot.
const (
	raftAppendEntries byte = iota
	raftRequestVote
	raftInstallSnapshot
	raftTimeoutNow
	raftRequestPreVote
)

// Bounds of what the gate reads before raft does.
const (
	// maxRaftMessage bounds one request's msgpack encoding: MaxAppendEntries entries of at
	// most a command each, with room to spare.
	maxRaftMessage = 256 << 20
	// maxMsgpackDepth bounds nesting: raft's requests nest three levels deep.
	maxMsgpackDepth = 16
)

// errRaftClaim is what the gate returns when a request names another member than the one
// whose certificate carries it.
var errRaftClaim = errors.New("raft request claims another member's identity")

// raftGate sits under raft's reader on an accepted raft connection. It reads each request
// whole before raft sees a byte of it, checks the member identity the request claims (its
// RPCHeader ID and address, and the legacy Leader and Candidate addresses) with check, and
// only then hands the bytes on. A member certificate thus speaks for the member it was
// authorised as, and for no other: raft itself believes what a request says about its
// sender, votes included.
type raftGate struct {
	net.Conn
	r       *bufio.Reader
	check   func(id, addr []byte) error
	pending []byte // checked bytes raft has not read yet
	raw     int64  // snapshot bytes that follow an InstallSnapshot request
	err     error
	buf     []byte
}

func newRaftGate(c net.Conn, check func(id, addr []byte) error) *raftGate {
	return &raftGate{Conn: c, r: bufio.NewReaderSize(c, 64<<10), check: check}
}

func (g *raftGate) Read(p []byte) (int, error) {
	if len(g.pending) == 0 && g.raw == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if g.err = g.next(); g.err != nil {
			g.Conn.Close() // raft learns it on its next read or write
			return 0, g.err
		}
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if int64(len(p)) > g.raw {
		p = p[:g.raw]
	}
	n, err := g.r.Read(p)
	g.raw -= int64(n)
	return n, err
}

// next reads and checks one request.
func (g *raftGate) next() error {
	typ, err := g.r.ReadByte()
	if err != nil {
		return err
	}
	switch typ {
	case raftAppendEntries, raftRequestVote, raftInstallSnapshot, raftTimeoutNow, raftRequestPreVote:
	default:
		return fmt.Errorf("raft request of unknown type %d", typ)
	}
	s := msgScanner{r: g.r, buf: append(g.buf[:0], typ)}
	claims, err := s.request()
	g.buf = s.buf
	if err != nil {
		return fmt.Errorf("read raft request: %w", err)
	}
	if claims.id == nil || claims.addr == nil {
		return reason.Wrap(reason.IdentityMismatch, fmt.Errorf("raft request without the sender's ID and address: %w", errRaftClaim))
	}
	for _, a := range claims.legacyAddrs {
		if len(a) > 0 && !bytes.Equal(a, claims.addr) {
			return reason.Wrap(reason.IdentityMismatch, fmt.Errorf("raft request names %q and %q as its sender: %w", claims.addr, a, errRaftClaim))
		}
	}
	if err := g.check(claims.id, claims.addr); err != nil {
		return err
	}
	if typ == raftInstallSnapshot {
		if claims.size < 0 {
			return errors.New("install snapshot request with a negative size")
		}
		g.raw = claims.size
	}
	g.pending = g.buf
	return nil
}

// claims is what a raft request says about its sender. Every occurrence of a key counts: a
// second "ID" must not slip past the check of the first.
type claims struct {
	id, addr    []byte
	legacyAddrs [][]byte
	size        int64
}

// msgScanner reads one msgpack value, keeping every byte it reads in buf.
type msgScanner struct {
	r   *bufio.Reader
	buf []byte
}

func (s *msgScanner) take(n int) ([]byte, error) {
	if n < 0 || len(s.buf)+n > maxRaftMessage {
		return nil, fmt.Errorf("a raft request over %d bytes", maxRaftMessage)
	}
	start := len(s.buf)
	s.buf = append(s.buf, make([]byte, n)...)
	if _, err := io.ReadFull(s.r, s.buf[start:]); err != nil {
		return nil, err
	}
	return s.buf[start:], nil
}

func (s *msgScanner) uint(n int) (uint64, error) {
	b, err := s.take(n)
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, err
}

// request reads the top-level map of a request and collects its claims.
func (s *msgScanner) request() (claims, error) {
	var c claims
	b, err := s.take(1)
	if err != nil {
		return c, err
	}
	n, err := s.mapLen(b[0])
	if err != nil {
		return c, err
	}
	for range n {
		key, _, err := s.value(1, true)
		if err != nil {
			return c, err
		}
		first := len(s.buf)
		val, num, err := s.value(1, false)
		if err != nil {
			return c, err
		}
		isInt := isIntType(s.buf[first])
		k := string(key)
		if !isClaimKey(k) && claimKeyFolded(k) {
			// raft's decoder matches field names exactly, so "iD" would pass here as the
			// ID while raft reads none: a spelling of a claim other than raft's is refused.
			return c, reason.Wrap(reason.IdentityMismatch, fmt.Errorf("raft request with the key %q: %w", k, errRaftClaim))
		}
		switch {
		case k == "ID":
			if c.id != nil && !bytes.Equal(c.id, val) {
				return c, reason.Wrap(reason.IdentityMismatch, fmt.Errorf("raft request with two IDs: %w", errRaftClaim))
			}
			c.id = bytes.Clone(val)
		case k == "Addr":
			if c.addr != nil && !bytes.Equal(c.addr, val) {
				return c, reason.Wrap(reason.IdentityMismatch, fmt.Errorf("raft request with two addresses: %w", errRaftClaim))
			}
			c.addr = bytes.Clone(val)
		case k == "Leader", k == "Candidate":
			c.legacyAddrs = append(c.legacyAddrs, bytes.Clone(val))
		case k == "Size" && isInt:
			c.size = num
		}
	}
	return c, nil
}

func (s *msgScanner) mapLen(b byte) (int, error) {
	switch {
	case b&0xf0 == 0x80:
		return int(b & 0x0f), nil
	case b == 0xde:
		n, err := s.uint(2)
		return int(n), err
	case b == 0xdf:
		n, err := s.uint(4)
		return int(n), err
	}
	return 0, fmt.Errorf("raft request is not a msgpack map (first byte %#x)", b)
}

// claimKeys are the request fields that say who sent it, and the snapshot size.
var claimKeys = [...]string{"ID", "Addr", "Leader", "Candidate", "Size"}

func isClaimKey(k string) bool {
	for _, c := range claimKeys {
		if k == c {
			return true
		}
	}
	return false
}

func claimKeyFolded(k string) bool {
	for _, c := range claimKeys {
		if strings.EqualFold(k, c) {
			return true
		}
	}
	return false
}

// isIntType reports a msgpack integer type byte.
func isIntType(t byte) bool { return t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3) }

// value reads one msgpack value. It returns the content of a str or bin, or the value of an
// integer, and nothing for other kinds; wantBytes refuses anything but str and bin (map
// keys). The content aliases buf.
func (s *msgScanner) value(depth int, wantBytes bool) ([]byte, int64, error) {
	if depth > maxMsgpackDepth {
		return nil, 0, errors.New("raft request nested too deep")
	}
	b, err := s.take(1)
	if err != nil {
		return nil, 0, err
	}
	t := b[0]
	var n uint64
	switch {
	case t <= 0x7f:
		return nil, int64(t), nil
	case t >= 0xe0:
		return nil, int64(int8(t)), nil
	case t&0xe0 == 0xa0: // fixstr
		b, err := s.take(int(t & 0x1f))
		return b, 0, err
	case t == 0xd9 || t == 0xc4 || t == 0xda || t == 0xc5 || t == 0xdb || t == 0xc6: // str, bin
		size := 1 // str8, bin8
		switch t {
		case 0xda, 0xc5:
			size = 2
		case 0xdb, 0xc6:
			size = 4
		}
		if n, err = s.uint(size); err != nil {
			return nil, 0, err
		}
		b, err := s.take(int(n))
		return b, 0, err
	case wantBytes:
		return nil, 0, fmt.Errorf("raft request with a map key of type %#x", t)
	case t >= 0xcc && t <= 0xcf: // uint8..64
		v, err := s.uint(1 << (t - 0xcc))
		return nil, int64(v), err
	case t >= 0xd0 && t <= 0xd3: // int8..64
		size := 1 << (t - 0xd0)
		v, err := s.uint(size)
		shift := 64 - 8*size
		return nil, int64(v<<shift) >> shift, err
	case t == 0xc0 || t == 0xc2 || t == 0xc3: // nil, false, true
		return nil, 0, nil
	case t == 0xca:
		_, err = s.take(4)
	case t == 0xcb:
		_, err = s.take(8)
	case t >= 0xd4 && t <= 0xd8: // fixext 1..16
		_, err = s.take(1 + 1<<(t-0xd4))
	case t >= 0xc7 && t <= 0xc9: // ext8/16/32
		if n, err = s.uint(1 << (t - 0xc7)); err == nil {
			_, err = s.take(int(n) + 1)
		}
	case t&0xf0 == 0x90:
		err = s.skip(int(t&0x0f), depth)
	case t&0xf0 == 0x80:
		err = s.skip(2*int(t&0x0f), depth)
	case t == 0xdc || t == 0xdd:
		if n, err = s.uint(2 << (t - 0xdc)); err == nil {
			err = s.skip(int(n), depth)
		}
	case t == 0xde || t == 0xdf:
		if n, err = s.uint(2 << (t - 0xde)); err == nil {
			err = s.skip(2*int(n), depth)
		}
	default:
		return nil, 0, fmt.Errorf("raft request with msgpack type %#x", t)
	}
	return nil, 0, err
}

// skip reads n values one level deeper.
func (s *msgScanner) skip(n, depth int) error {
	if n < 0 || n > maxRaftMessage {
		return fmt.Errorf("raft request with %d elements", n)
	}
	for range n {
		if _, _, err := s.value(depth+1, false); err != nil {
			return err
		}
	}
	return nil
}
