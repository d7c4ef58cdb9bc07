package cluster

import (
	"fmt"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// forwardable reports whether a command may come over the member channel from another
// member: the writes a client made there (puts, deletes and transactions of them), or a
// barrier. Membership changes never travel
// this way; they are admin operations, run on the primary only (adminOnPrimary). It reads
// the op byte only, as isMemberCommand does: the store decodes and checks the rest when
// it applies the command.
func forwardable(data []byte) error {
	if len(data) <= opOffset {
		return fmt.Errorf("a forwarded command of %d bytes: %w", len(data), store.ErrBadCommand)
	}
	switch op := store.Op(data[opOffset]); op {
	case store.OpPut, store.OpDelete, store.OpTxn, store.OpNoop,
		store.OpLeaseGrant, store.OpLeaseRevoke, store.OpLeaseKeepAlive:
		return nil
	default:
		return reason.Wrap(reason.NotAllowed, fmt.Errorf("a forwarded command of kind %d: %w", op, ErrNotAllowed))
	}
}
