// Package cluster replicates mirrorkv's store with hashicorp/raft over the member channel.
//
// It owns the raft node and its log, the FSM adapter that hands committed batches to the
// store in one transaction each, the member RPCs that share the member port with raft
// (forwarding writes and admin operations to the primary, read index, per-member status),
// membership changes and the DN authorisation they imply, and the group status with its
// roles PRIMARY, STANDBY, ASYNC and UNSYNC, the preferred primary (prefer.go) and the
// disaster recovery of a stopped async member (recover.go). It never touches TLS itself: the
// member channel comes in as a Network whose conns are already authenticated and authorised.
package cluster
