package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// commandVersion is the first byte of every encoded command. A member refuses a version it
// does not know instead of guessing, so a command written by a newer release fails loudly
// (ErrBadCommand) on an older member rather than being applied differently.
const commandVersion = 1

// Bits of the flags byte of an encoded command.
const (
	flagHasIf  = 1 << 0
	flagLease  = 1 << 1 // the lease fields follow the async byte
	flagsKnown = flagHasIf | flagLease
)

// Limits a command must respect. They are bbolt's own, checked at decode time so that a put
// can never fail inside the apply transaction, where a failure would otherwise be ambiguous.
const (
	maxKeyBytes   = bolt.MaxKeySize
	maxValueBytes = bolt.MaxValueSize - recordHeader
)

// EncodeCommand encodes c for a raft log entry:
//
//	version(1) op(1) key(uvarint len, bytes) value(uvarint len, bytes) flags(1)
//	ifRevision(varint) name memberAddr clientURL dn (uvarint len, bytes each) async(1)
//	[lease(uvarint) leaseTTL(uvarint) maxLeases(uvarint)]
//
// The lease fields are there only with the flagLease bit, so a command without them encodes
// as before leases existed, and a member from before leases refuses one with them (unknown
// flag) instead of applying it without its lease. It does not validate c; DecodeCommand does, on every member.
func EncodeCommand(c Command) []byte {
	m := c.Member
	value := c.Value
	if c.Op == OpTxn && c.Txn != nil {
		value = encodeTxn(c.Txn)
	}
	n := 2 + lenField(len(c.Key)) + lenField(len(value)) + 1 + varintLen(c.IfRevision) +
		lenField(len(m.Name)) + lenField(len(m.MemberAddr)) + lenField(len(m.ClientURL)) +
		lenField(len(m.DN)) + 1
	hasLease := c.Lease != 0 || c.LeaseTTL != 0 || c.MaxLeases != 0
	if hasLease {
		n += uvarintLen(uint64(c.Lease)) + uvarintLen(uint64(c.LeaseTTL)) + uvarintLen(uint64(c.MaxLeases))
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion, byte(c.Op))
	b = appendField(b, c.Key)
	b = appendField(b, value)
	var flags byte
	if c.HasIf {
		flags |= flagHasIf
	}
	if hasLease {
		flags |= flagLease
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, c.IfRevision)
	b = appendField(b, m.Name)
	b = appendField(b, m.MemberAddr)
	b = appendField(b, m.ClientURL)
	b = appendField(b, m.DN)
	b = append(b, boolByte(m.Async))
	if hasLease {
		b = binary.AppendUvarint(b, uint64(c.Lease))
		b = binary.AppendUvarint(b, uint64(c.LeaseTTL))
		b = binary.AppendUvarint(b, uint64(c.MaxLeases))
	}
	return b
}

// DecodeCommand decodes and validates a command written by EncodeCommand. Every error wraps
// ErrBadCommand. The result does not alias b.
func DecodeCommand(b []byte) (Command, error) {
	c, _, err := decodeCommand(b, true)
	return c, err
}

// decodeCommand decodes b. With owned false, Value aliases b and Key is left empty: the key
// comes back as a sub-slice of b instead, which saves ApplyBatch two allocations per entry
// while b (the raft entry) outlives the transaction that uses them.
func decodeCommand(b []byte, owned bool) (Command, []byte, error) {
	d := decoder{b: b}
	if v := d.byte("version"); d.err == nil && v != commandVersion {
		return Command{}, nil, badCommand("version %d is not %d: a newer mirrorkv wrote it; upgrade this member", v, commandVersion)
	}
	c := Command{Op: Op(d.byte("op"))}
	key := d.field("key")
	c.Value = d.field("value")
	flags := d.byte("flags")
	c.HasIf = flags&flagHasIf != 0
	c.IfRevision = d.varint("if-revision")
	c.Member = Member{
		Name:       string(d.field("member name")),
		MemberAddr: string(d.field("member address")),
		ClientURL:  string(d.field("member client URL")),
		DN:         string(d.field("member DN")),
	}
	async := d.byte("member async")
	if flags&flagLease != 0 {
		c.Lease = d.positive("lease")
		c.LeaseTTL = d.positive("lease TTL")
		c.MaxLeases = d.positive("max leases")
	}
	if d.err != nil {
		return Command{}, nil, d.err
	}
	switch {
	case len(d.b) != 0:
		return Command{}, nil, badCommand("%d trailing bytes", len(d.b))
	case flags&^flagsKnown != 0:
		return Command{}, nil, badCommand("unknown flags %#x", flags&^flagsKnown)
	case async > 1:
		return Command{}, nil, badCommand("async byte %d is neither 0 nor 1", async)
	}
	c.Member.Async = async == 1
	if len(c.Value) == 0 {
		// One spelling of "no value", so that a decoded command compares equal to itself
		// after a round trip.
		c.Value = nil
	}
	if err := validate(c, key); err != nil {
		return Command{}, nil, err
	}
	if c.Op == OpTxn {
		t, err := decodeTxn(c.Value)
		if err != nil {
			return Command{}, nil, err
		}
		c.Txn, c.Value = t, nil
	}
	if owned {
		c.Key = string(key)
		if c.Value != nil {
			c.Value = append([]byte(nil), c.Value...)
		}
		key = nil
	}
	return c, key, nil
}

// validate checks what bbolt and the buckets need of a command.
func validate(c Command, key []byte) error {
	if err := validateLease(c, key); err != nil {
		return err
	}
	switch c.Op {
	case OpPut, OpDelete:
		if len(key) == 0 {
			return badCommand("op %d with an empty key", c.Op)
		}
		if len(key) > maxKeyBytes {
			return badCommand("key of %d bytes exceeds %d", len(key), maxKeyBytes)
		}
		if len(c.Value) > maxValueBytes {
			return badCommand("value of %d bytes exceeds %d", len(c.Value), maxValueBytes)
		}
	case OpSetMember, OpRemoveMember:
		if c.Member.Name == "" {
			return badCommand("op %d with an empty member name", c.Op)
		}
		if len(c.Member.Name) > maxKeyBytes {
			return badCommand("member name of %d bytes exceeds %d", len(c.Member.Name), maxKeyBytes)
		}
	case OpSetCRL:
		if string(key) != CRLPortMember && string(key) != CRLPortClient {
			return badCommand("CRL for port %q: want %s or %s", key, CRLPortMember, CRLPortClient)
		}
		if len(c.Value) == 0 || len(c.Value) > maxCRLBytes {
			return badCommand("CRL of %d bytes: want 1 to %d", len(c.Value), maxCRLBytes)
		}
	case OpTxn:
		if len(key) != 0 {
			return badCommand("txn with a key")
		}
	case OpSetPreferred:
		if len(key) > maxKeyBytes || len(c.Member.Name) > maxKeyBytes {
			return badCommand("member name of %d bytes exceeds %d", max(len(key), len(c.Member.Name)), maxKeyBytes)
		}
	case OpNoop, OpLeaseGrant, OpLeaseRevoke, OpLeaseKeepAlive:
	default:
		return badCommand("unknown op %d", c.Op)
	}
	return nil
}

func badCommand(format string, args ...any) error {
	return fmt.Errorf("decode command: %s: %w", fmt.Sprintf(format, args...), ErrBadCommand)
}

// decoder reads fields off b; the first failure sticks in err and later reads return zero
// values, so DecodeCommand checks once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = badCommand("truncated before %s", what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// positive reads a uvarint that must fit an int64.
func (d *decoder) positive(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > 1<<63-1 {
		d.err = badCommand("bad uvarint in %s", what)
		return 0
	}
	d.b = d.b[n:]
	return int64(v)
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = badCommand("bad varint in %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// field reads a uvarint length and that many bytes, refusing a length beyond the buffer
// before slicing, so a hostile length can neither panic nor allocate.
func (d *decoder) field(what string) []byte {
	if d.err != nil {
		return nil
	}
	l, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = badCommand("bad length of %s", what)
		return nil
	}
	d.b = d.b[n:]
	if l > uint64(len(d.b)) {
		d.err = badCommand("%s of %d bytes is longer than the %d bytes left", what, l, len(d.b))
		return nil
	}
	v := d.b[:l:l]
	d.b = d.b[l:]
	return v
}

func appendField[T string | []byte](b []byte, v T) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func lenField(n int) int {
	return uvarintLen(uint64(n)) + n
}

// uvarintLen is the length of the shortest uvarint encoding of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// varintLen is the length of the varint encoding of v (zig-zag, then uvarint).
func varintLen(v int64) int {
	return uvarintLen(uint64(v)<<1 ^ uint64(v>>63))
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
