package store

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Seed replaces the store with a snapshot of another group's store (a backup), as the first
// state of a new group: every key with its revisions, and the CRLs pushed to that group, but
// no members, since the new group's first primary records itself and the old group's members
// must not be authorised here, and an applied index of 0, since the new group's raft log
// starts again at index 1 and the store skips entries at or below its applied index. The
// store's revision goes on from the snapshot's, so that a key keeps its revision.
//
// The snapshot is checked as Restore checks one: a damaged or truncated stream leaves the
// store as it was, with an error that wraps ErrBadSnapshot.
func (s *Store) Seed(r io.Reader) error {
	if s.AppliedIndex() != 0 || s.Revision() != 0 {
		return fmt.Errorf("seed store %s: it already holds state (applied index %d, revision %d); seed only a new data directory", s.path, s.AppliedIndex(), s.Revision())
	}
	if err := s.Restore(r); err != nil {
		return fmt.Errorf("seed store: %w", err)
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rev := s.Revision()
	err := s.commitTx(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bucketMembers)); err != nil {
			return fmt.Errorf("drop the backup's members: %w", err)
		}
		if _, err := tx.CreateBucket([]byte(bucketMembers)); err != nil {
			return fmt.Errorf("drop the backup's members: %w", err)
		}
		return writeMeta(tx, 0, rev)
	})
	if err != nil {
		return fmt.Errorf("seed store %s: %w", s.path, err)
	}
	s.applied.Store(0)
	return nil
}

// SnapshotHeader reads the start of a snapshot stream, as Snapshot writes it: the raft index
// it reflects and the store's revision. It reads the magic and the meta record only, so a
// damaged stream past them is found by Restore, not here.
func SnapshotHeader(r io.Reader) (applied uint64, revision int64, err error) {
	d := &snapReader{r: bufio.NewReader(r), tab: crc32.MakeTable(crc32.Castagnoli)}
	magic, err := d.read("magic", len(snapshotMagic), 0)
	if err != nil {
		return 0, 0, err
	}
	if string(magic) != snapshotMagic {
		return 0, 0, d.bad("magic %q is not %q: not a mirrorkv snapshot", magic, snapshotMagic)
	}
	meta, err := d.meta()
	if err != nil {
		return 0, 0, err
	}
	return meta.applied, meta.revision, nil
}
