package metadb

import (
	"os"
	"path/filepath"
	"testing"
)

// mirrorkv: the meta store (segment list and raft's stable store) is private to the
// member's user, whatever the umask.
func TestLoad_FileMode(t *testing.T) {
	dir := t.TempDir()
	var db BoltMetaDB
	if _, err := db.Load(dir); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("%s mode %#o, want 0600", FileName, mode)
	}
}
