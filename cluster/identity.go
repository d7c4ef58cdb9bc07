package cluster

import (
	"fmt"
	"sync"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// identity is who a member certificate's DN was authorised as: the name (raft server ID) and
// member address that `member add` recorded.
type identity struct{ name, addr string }

// identities maps a canonical DN to the members recorded under it; swapped whole.
type identities map[string][]identity

func identitiesOf(self store.Member, ms []store.Member) identities {
	ids := identities{self.DN: {{self.Name, self.MemberAddr}}}
	for _, m := range ms {
		if m.Name != self.Name {
			ids[m.DN] = append(ids[m.DN], identity{m.Name, m.MemberAddr})
		}
	}
	return ids
}

// claimLogEvery bounds how often a refused claim from one DN is logged: raft redials often.
const claimLogEvery = 30 * time.Second

// claimLog rate-limits the log lines of refused raft claims per DN.
type claimLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *claimLog) due(dn string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last[dn]) < claimLogEvery {
		return false
	}
	if len(l.last) >= 1024 {
		clear(l.last)
	}
	l.last[dn] = now
	return true
}

// checkClaim is the raft gate's check: a raft request on a conn whose peer proved dn must
// name a member recorded under dn, at that member's address. Without the check a member
// certificate could speak for any member in raft, and ask for votes in its name.
func (c *Cluster) checkClaim(dn string, id, addr []byte) error {
	ids := *c.idents.Load()
	for _, who := range ids[dn] {
		if who.name == string(id) && who.addr == string(addr) {
			return nil
		}
	}
	err := reason.Wrap(reason.IdentityMismatch, fmt.Errorf("peer %q sent a raft request as %s at %s, but it is authorised as %v: %w", dn, id, addr, ids[dn], errRaftClaim))
	if c.claims.due(dn) {
		c.log.Warn("refused a raft request that claims another member's identity; closing the conn",
			"dn", dn, "claimed_id", string(id), "claimed_addr", string(addr), "reason", int(reason.IdentityMismatch), "reason_name", reason.IdentityMismatch.Name())
	}
	return err
}
