package cluster

import (
	"context"
	"fmt"

	"github.com/mirrorkv/mirrorkv/store"
)

// Backup takes a point-in-time copy of the store on the primary, after every write
// committed before the call has been applied: a write acknowledged before a backup began is
// in it. Elsewhere it fails with reason.NotPrimary, naming the primary, as every admin
// operation does. The caller releases the snapshot once it has streamed it.
func (c *Cluster) Backup(ctx context.Context) (store.Snapshot, error) {
	var snap store.Snapshot
	err := c.mem.adminOnPrimary(func() error {
		if err := c.ReadIndex(ctx); err != nil {
			return fmt.Errorf("backup: wait until every committed write is applied: %w", err)
		}
		var err error
		if snap, err = c.st.Snapshot(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return nil
	})
	return snap, err
}
