package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
)

// The parts of a member (forwarding, membership, status) each reach raft through an
// interface of the few *raft.Raft methods they call, so that each can be tested alone over a
// fake or a raft of its own.

// leaderView is who this member believes leads, and its own raft state.
type leaderView interface {
	State() raft.RaftState
	LeaderWithID() (raft.ServerAddress, raft.ServerID)
}

// configView is the raft configuration: the voters and non-voters.
type configView interface {
	GetConfiguration() raft.ConfigurationFuture
}

// forwardRaft is what forwarding asks of raft: who leads, and on the primary, committing a
// command and confirming leadership for a read index.
type forwardRaft interface {
	leaderView
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
	VerifyLeader() raft.Future
	CurrentTerm() uint64
	CommitIndex() uint64
}

// membershipRaft is what membership asks of raft: configuration changes and leadership
// transfers, and the primary's last index to judge a newcomer's catch-up by.
type membershipRaft interface {
	leaderView
	configView
	LastIndex() uint64
	AddVoter(id raft.ServerID, addr raft.ServerAddress, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	AddNonvoter(id raft.ServerID, addr raft.ServerAddress, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	RemoveServer(id raft.ServerID, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	LeadershipTransfer() raft.Future
	LeadershipTransferToServer(id raft.ServerID, addr raft.ServerAddress) raft.Future
}

// statusRaft is what status asks of raft: this member's own view of the log and the leader.
type statusRaft interface {
	leaderView
	configView
	LastContact() time.Time
	LastIndex() uint64
	CommitIndex() uint64
}

// memberCaller runs one member RPC on the member at addr.
type memberCaller interface {
	call(ctx context.Context, addr string, method byte, payload []byte, idempotent bool) ([]byte, error)
}

// memberLister is the store's membership.
type memberLister interface {
	Members() ([]store.Member, error)
}

// joinStore is what a joining member asks of its store: the membership with the index it
// reflects, and how far the store has applied.
type joinStore interface {
	memberLister
	MembersAt() ([]store.Member, uint64, error)
	AppliedIndex() uint64
}

// staller reports whether the store is stalled (a full disk), and why.
type staller interface {
	Stalled() error
}

// raftServer is name's entry in the raft configuration, or nil.
func raftServer(r configView, name string) *raft.Server {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == name {
			return &s
		}
	}
	return nil
}
