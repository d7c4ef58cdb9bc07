package cluster

import "errors"

// ErrNoPrimary is returned (wrapped with reason.NoPrimary) by Apply, ReadIndex and the admin
// operations when no primary is known, or the primary cannot be reached.
var ErrNoPrimary = errors.New("no primary known")

// ErrShutdown is returned (wrapped with reason.Shutdown) by every operation once Close has
// begun.
var ErrShutdown = errors.New("member is shutting down")

// ErrLeadershipLost is returned (wrapped with reason.LeadershipLost) by Apply when the
// primary lost its leadership before the command committed: the outcome is unknown.
var ErrLeadershipLost = errors.New("leadership lost before commit; outcome unknown")

// ErrNotPrimary is returned (wrapped with reason.NotPrimary) by a member's RPC service when
// asked to do what only the primary may do; the forwarding caller retries on the new primary.
var ErrNotPrimary = errors.New("this member is not the primary")

// ErrUnknownMember is returned by RemoveMember, Promote and TransferLeadership for a name
// that is not a member of the group.
var ErrUnknownMember = errors.New("no such member")

// ErrFrameTooLarge is returned by the member RPC decoder for a frame over the size limit.
var ErrFrameTooLarge = errors.New("rpc frame too large")

// ErrBadFrame is returned by the member RPC decoder for a frame it cannot parse.
var ErrBadFrame = errors.New("malformed rpc frame")

// ErrDirInUse is returned by New when another member, in this process or another, still
// holds the raft directory.
var ErrDirInUse = errors.New("in use by another member: stop that member first, or give this one its own directory")

// ErrNotAllowed is returned (wrapped with reason.NotAllowed) by the member RPC service and by
// Apply for a command that a member certificate may not carry: anything but a put, a delete
// or a barrier. Membership changes go through the admin operations.
var ErrNotAllowed = errors.New("membership changes are admin operations: send them with an admin client certificate to the client port")
