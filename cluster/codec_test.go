package cluster

import (
	"testing"

	"github.com/mirrorkv/mirrorkv/store"
)

func TestIsMemberCommand(t *testing.T) {
	m := store.Member{Name: "m1", MemberAddr: "127.0.0.1:1", DN: "CN=m1"}
	for _, tc := range []struct {
		name string
		cmd  store.Command
		want bool
	}{
		{"put", store.Command{Op: store.OpPut, Key: "k", Value: []byte{byte(store.OpSetMember)}}, false},
		{"delete", store.Command{Op: store.OpDelete, Key: "k"}, false},
		{"noop", store.Command{Op: store.OpNoop}, false},
		{"set member", store.Command{Op: store.OpSetMember, Member: m}, true},
		{"remove member", store.Command{Op: store.OpRemoveMember, Member: m}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := store.EncodeCommand(tc.cmd)
			if _, err := store.DecodeCommand(data); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := isMemberCommand(data); got != tc.want {
				t.Errorf("isMemberCommand = %v, want %v", got, tc.want)
			}
		})
	}
	if isMemberCommand(nil) || isMemberCommand([]byte{1}) {
		t.Error("isMemberCommand of a truncated entry = true")
	}
}
