package fs

import (
	"os"
	"path/filepath"
	"testing"
)

// mirrorkv: segment files are private to the member's user, whatever the umask.
func TestCreate_FileMode(t *testing.T) {
	dir := t.TempDir()
	f, err := New().Create(dir, "00001.wal", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Stat(filepath.Join(dir, "00001.wal"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("segment file mode %#o, want 0600", mode)
	}
}
