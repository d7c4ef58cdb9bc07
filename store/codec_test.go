package store

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// codecCases are valid commands, shared by the round-trip test and the fuzz seeds.
var codecCases = []struct {
	name string
	cmd  Command
}{
	{"put", put("a", "1")},
	{"put empty value", Command{Op: OpPut, Key: "a"}},
	{"put binary", Command{Op: OpPut, Key: "k\x00\xff", Value: []byte{0, 1, 2, 255}}},
	{"put if absent", putIf("a", "1", 0)},
	{"put if revision", putIf("a", "1", 1<<40)},
	{"put if negative", putIf("a", "1", -7)},
	{"put large value", Command{Op: OpPut, Key: strings.Repeat("k", 300), Value: bytes.Repeat([]byte{7}, 70000)}},
	{"delete", del("a")},
	{"delete if", delIf("a", 3)},
	{"set member", Command{Op: OpSetMember, Member: Member{
		Name: "m1", MemberAddr: "10.0.0.1:7000", ClientURL: "https://10.0.0.1:8443", DN: "CN=m1,O=mirrorkv", Async: true}}},
	{"remove member", Command{Op: OpRemoveMember, Member: Member{Name: "m1"}}},
	{"noop", Command{Op: OpNoop}},
	{"lease grant", Command{Op: OpLeaseGrant, LeaseTTL: 60, MaxLeases: 10000}},
	{"lease keep-alive", Command{Op: OpLeaseKeepAlive, Lease: 1 << 40}},
	{"lease revoke if touched", Command{Op: OpLeaseRevoke, Lease: 7, HasIf: true, IfRevision: 9}},
	{"put with lease", Command{Op: OpPut, Key: "a", Value: []byte("1"), Lease: 7}},
	{"txn put with lease", Command{Op: OpTxn, Txn: &Txn{Then: []TxnOp{{Op: OpPut, Key: "a", Lease: 7}, {Op: OpDelete, Key: "b"}}}}},
}

func TestEncodeCommand(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			b := EncodeCommand(tc.cmd)
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand(%x) = %v", b, err)
			}
			if !reflect.DeepEqual(got, tc.cmd) {
				t.Fatalf("round trip = %+v, want %+v", got, tc.cmd)
			}
			if cap(b) != len(b) {
				t.Errorf("encoding has len %d, cap %d: the size estimate is off", len(b), cap(b))
			}
		})
	}
}

func TestDecodeCommand_DoesNotAlias(t *testing.T) {
	b := EncodeCommand(put("a", "value"))
	c, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if c.Key != "a" || string(c.Value) != "value" {
		t.Fatalf("decoded command changed with its buffer: %+v", c)
	}
}

func TestDecodeCommand_Errors(t *testing.T) {
	valid := EncodeCommand(put("a", "1"))
	with := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated before version"},
		{"version 0", with(0, 0), "version 0"},
		{"version 2", with(0, 2), "version 2"},
		{"op 0", with(1, 0), "unknown op 0"},
		{"op 11", with(1, 11), "unknown op 11"},
		{"txn with a key", with(1, 7), "txn with a key"},
		{"crl for no port", with(1, 6), "CRL for port \"a\""},
		{"key longer than buffer", with(2, 100), "longer than"},
		{"bad key length", append([]byte{1, 1}, bytes.Repeat([]byte{0xff}, 11)...), "bad length of key"},
		{"unknown flag", with(6, 4), "unknown flags"},
		{"async 2", with(len(valid)-1, 2), "async byte 2"},
		{"trailing byte", append(bytes.Clone(valid), 0), "1 trailing bytes"},
		{"put without key", EncodeCommand(put("", "1")), "empty key"},
		{"delete without key", EncodeCommand(del("")), "empty key"},
		{"key too long", EncodeCommand(put(strings.Repeat("k", maxKeyBytes+1), "")), "exceeds"},
		{"member without name", EncodeCommand(Command{Op: OpSetMember}), "empty member name"},
		{"remove without name", EncodeCommand(Command{Op: OpRemoveMember}), "empty member name"},
		{"bad varint", append(append([]byte{1, 5, 0, 0, 0}, bytes.Repeat([]byte{0xff}, 10)...), 0xff), "bad varint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCommand(tc.in)
			if !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeCommand(%x) = %v, want ErrBadCommand mentioning %q", tc.in, err, tc.want)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for _, tc := range codecCases {
			b := EncodeCommand(tc.cmd)
			for n := range len(b) {
				if _, err := DecodeCommand(b[:n]); !errors.Is(err, ErrBadCommand) {
					t.Fatalf("%s cut to %d of %d bytes: err = %v, want ErrBadCommand", tc.name, n, len(b), err)
				}
			}
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	for _, tc := range codecCases {
		f.Add(EncodeCommand(tc.cmd))
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add(EncodeCommand(setCRL(CRLPortClient, newTestCA(f, "fuzz CA").crl(f, 3, 1))))
	f.Add(EncodeCommand(Command{Op: OpTxn, Txn: &goldenTxn}))
	f.Add(EncodeCommand(Command{Op: OpTxn, Txn: &Txn{}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand(%x) = %v, does not wrap ErrBadCommand", b, err)
			}
			return
		}
		again, err := DecodeCommand(EncodeCommand(c))
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", c, err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %x:\n got %+v\nwant %+v", b, again, c)
		}
		// The aliasing decoder ApplyBatch uses must agree with the public one.
		fast, key, err := decodeCommand(b, false)
		if err != nil {
			t.Fatalf("decodeCommand(%x, false) = %v, DecodeCommand accepted it", b, err)
		}
		fast.Key = string(key)
		if !reflect.DeepEqual(fast, c) {
			t.Fatalf("aliasing decoder: %+v, want %+v", fast, c)
		}
	})
}

func BenchmarkEncodeCommand(b *testing.B) {
	c := Command{Op: OpPut, Key: "bench/key/0001", Value: bytes.Repeat([]byte{'v'}, 256), HasIf: true, IfRevision: 12345}
	b.ReportAllocs()
	for b.Loop() {
		EncodeCommand(c)
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	data := EncodeCommand(Command{Op: OpPut, Key: "bench/key/0001", Value: bytes.Repeat([]byte{'v'}, 256), HasIf: true, IfRevision: 12345})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCommand(data); err != nil {
			b.Fatal(err)
		}
	}
}
