package store

import "errors"

// ErrNotFound, ErrBadCommand and PreconditionError, the errors a command's Result carries,
// live in command.go next to the types they describe.

// ErrClosed is returned by every method of a Store after Close, and is wrapped by the
// Result.Err of each entry of an ApplyBatch that Close interrupted while it was waiting for
// the disk; those entries were not applied.
var ErrClosed = errors.New("store closed")

// ErrBadSnapshot is wrapped by every error of Restore that comes from the stream itself: a
// wrong magic, a truncated or unreadable stream, a record out of order, a checksum mismatch.
// The store keeps its state; ask the group for a fresh snapshot.
var ErrBadSnapshot = errors.New("bad snapshot")

// errDamaged marks a store file that bbolt opens but whose contents mirrorkv cannot read;
// Open reports it as a damaged file.
var errDamaged = errors.New("unexpected contents")
