// Package store owns the replicated state machine: the keys, their revisions and the group's
// authorised members, kept in one bbolt file per member. The cluster package feeds it
// committed raft entries through ApplyBatch, and moves whole states between members with
// Snapshot and Restore.
//
// Every member applies the same entries in the same order, so every decision here is a pure
// function of the entries and the state before them: a command that cannot be applied gets an
// error in its Result instead of stopping the batch, and a disk that refuses a write makes
// ApplyBatch wait and retry rather than skip, because a skipped entry would leave this member
// different from the rest of the group for good.
//
// The store does not import raft; docs/storage.md describes the file layout, the command
// encoding and the snapshot format.
package store
