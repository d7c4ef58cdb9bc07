// Package wal is mirrorkv's copy of github.com/hashicorp/raft-wal v0.4.1: a raft
// LogStore and StableStore that appends log entries to preallocated segment files, one
// fsync per append, and keeps the segment list and the stable values in a meta store.
// MIRRORKV.md lists what differs from upstream and why.
package wal
