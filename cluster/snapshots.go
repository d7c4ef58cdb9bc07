package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotsDir is where raft's FileSnapshotStore keeps its snapshots under its base
// directory (raft's unexported snapPath).
const snapshotsDir = "snapshots"

// openSnapshotStore opens raft's file snapshot store in dir with nothing in it open to
// other users. FileSnapshotStore creates its directories 0755 and its files 0644 and has no
// option for modes, so:
//
//   - the snapshots directory is created 0700 before the store, which then finds it and
//     leaves its mode alone: from that moment nothing below it is reachable by anyone but the
//     member's user, whatever raft creates there;
//   - each snapshot, once complete, and any left from an older mirrorkv, is also tightened
//     (0700 directories, no group or other bits on files), so that a copy of the directory
//     (a backup, a move to a new disk) keeps it private.
//
// Snapshots hold the whole store: they get the same protection as the store file.
func openSnapshotStore(dir string, retain int, hlog hclog.Logger) (raft.SnapshotStore, error) {
	snaps := filepath.Join(dir, snapshotsDir)
	if err := os.MkdirAll(snaps, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	if err := makePrivate(snaps); err != nil {
		return nil, fmt.Errorf("restrict snapshot directory %s to its owner: %w", snaps, err)
	}
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, retain, hlog)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store in %s: %w", dir, err)
	}
	return privateSnapshots{FileSnapshotStore: fss, dir: snaps, log: hlog}, nil
}

// privateSnapshots tightens each snapshot it creates once the snapshot is complete.
type privateSnapshots struct {
	*raft.FileSnapshotStore
	dir string
	log hclog.Logger
}

func (s privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return privateSink{SnapshotSink: sink, s: s}, nil
}

type privateSink struct {
	raft.SnapshotSink
	s privateSnapshots
}

// Close completes the snapshot (raft renames ID.tmp to ID), then tightens it. A failure to
// tighten is logged, not returned: the snapshot is complete and durable, and unreachable by
// other users through its 0700 parent; failing it would only stop raft from compacting.
func (k privateSink) Close() error {
	if err := k.SnapshotSink.Close(); err != nil {
		return err
	}
	if err := makePrivate(filepath.Join(k.s.dir, k.ID())); err != nil {
		k.s.log.Warn("could not restrict a snapshot to the member's user; its directory still is", "id", k.ID(), "error", err)
	}
	return nil
}

// makePrivate takes every group and other permission off root and everything below it.
func makePrivate(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			return os.Chmod(path, mode&^0o077)
		}
		return nil
	})
}
