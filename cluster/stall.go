package cluster

import (
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// stallRetry is how often a primary whose store is stalled tries again to hand its role
// over, while the last attempt failed or the role came back to it.
const stallRetry = time.Second

// watchStall hands the primary role over while the store is stalled (a full disk): raft
// would otherwise keep a primary whose store applies nothing, and every write of the group
// would wait on it. A stalled member is UNSYNC (see stalledStatus) and refuses what would
// wait on its store; once the store applies again it catches up and is a standby again.
func (c *Cluster) watchStall() {
	tick := time.NewTicker(stallPoll)
	defer tick.Stop()
	var stalled bool
	var lastTry time.Time
	for {
		select {
		case <-c.life.ctx.Done():
			return
		case <-tick.C:
		}
		err := c.st.Stalled()
		if err == nil {
			if stalled {
				c.log.Info("store applies again; the member catches up")
			}
			stalled = false
			continue
		}
		if !stalled {
			c.log.Warn("store is stalled: this member cannot be the primary until it applies again",
				"err", err, "reason", reason.Of(err, reason.StorageFail).Name())
		}
		stalled = true
		if !c.isLeader() || time.Since(lastTry) < stallRetry {
			continue
		}
		lastTry = time.Now()
		c.log.Warn("handing the primary role over: this member's store is stalled", "err", err)
		if err := c.life.waitFuture(c.life.ctx, c.raft.LeadershipTransfer(), "hand the primary role over"); err != nil {
			c.log.Warn("hand the primary role over", "err", err, "retry_in", stallRetry)
		}
	}
}
