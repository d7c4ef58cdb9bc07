package cluster

import (
	"github.com/mirrorkv/mirrorkv/store"
)

// opOffset is where store.EncodeCommand puts the op: after its version byte.
// TestIsMemberCommand holds it to that.
const opOffset = 1

// isMemberCommand reports a command that changes the membership. It runs on every command
// entry of every batch, so it reads the op byte instead of decoding (and copying) the whole
// command; a false positive only costs a redundant refresh of the authoriser.
func isMemberCommand(data []byte) bool {
	if len(data) <= opOffset {
		return false
	}
	op := store.Op(data[opOffset])
	return op == store.OpSetMember || op == store.OpRemoveMember
}
