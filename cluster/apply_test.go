package cluster

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
)

// raftError gives every raft failure a reason the API maps to a status a client can act on;
// a raft-log append refused for lack of space must be 507, not 500, even though raft
// flattens the log store's error into text.
func TestRaftError_Reasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want reason.Code
	}{
		{raft.ErrNotLeader, reason.NotPrimary},
		{raft.ErrLeadershipLost, reason.LeadershipLost},
		{raft.ErrRaftShutdown, reason.Shutdown},
		{raft.ErrEnqueueTimeout, reason.Timeout},
		{fmt.Errorf("store: %w", syscall.ENOSPC), reason.DiskFull},
		{fmt.Errorf("unable to store logs within log store, err: %q", "write raft.db: no space left on device"), reason.DiskFull},
		{errors.New("something else"), reason.OK},
	} {
		if got := reason.Of(raftError(tc.err), reason.OK); got != tc.want {
			t.Errorf("raftError(%v) has reason %d, want %d", tc.err, got, tc.want)
		}
	}
}
