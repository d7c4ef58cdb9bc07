//go:build unix

package cluster

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// assertPrivate fails for every file or directory under root that grants any permission
// to its group or to other users.
func assertPrivate(t testing.TB, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %#o: open to other users", path, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenSnapshotStore_Private(t *testing.T) {
	old := syscall.Umask(0o022) // what most hosts run with; raft relies on it for its modes
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	// A directory left by an older mirrorkv, with raft's own modes.
	stale := filepath.Join(dir, snapshotsDir, "1-1-1")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "meta.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, snapshotsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	snaps, err := openSnapshotStore(dir, 5, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	sink, err := snaps.Create(1, 10, 2, raft.Configuration{}, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if _, rc, err := snaps.Open(sink.ID()); err != nil {
		t.Fatalf("open the new snapshot: %v", err)
	} else {
		rc.Close()
	}
	assertPrivate(t, filepath.Join(dir, snapshotsDir))
}
