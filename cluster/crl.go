package cluster

import (
	"context"

	"github.com/mirrorkv/mirrorkv/store"
)

// PushCRL puts the CRL der (DER) into the group's replicated state, for the port that check
// names. Like every admin operation it runs on the primary only (elsewhere it is refused with
// reason.NotPrimary, naming the primary), and check runs there before anything is committed:
// a CRL the primary cannot verify is refused with check's reason and the group's state does
// not change. Every member verifies the CRL again when it applies it.
func (c *Cluster) PushCRL(ctx context.Context, der []byte, check func(der []byte) (port string, err error)) (port string, err error) {
	err = c.mem.adminOnPrimary(func() error {
		if port, err = check(der); err != nil {
			return err
		}
		res, err := c.fwd.applyLocal(ctx, store.EncodeCommand(store.Command{Op: store.OpSetCRL, Key: port, Value: der}))
		if err != nil {
			return err
		}
		return res.Err
	})
	return port, err
}
