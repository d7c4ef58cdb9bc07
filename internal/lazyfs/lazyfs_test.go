package lazyfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func mount(t *testing.T) (*FS, string, string) {
	t.Helper()
	backing, mnt := t.TempDir(), t.TempDir()
	f, err := Mount(backing, mnt)
	if err != nil {
		t.Fatalf("mount: %v (the test needs root, or fusermount, and /dev/fuse)", err)
	}
	t.Cleanup(func() { _ = f.Unmount() })
	return f, backing, mnt
}

// What was fsync'd survives a crash; what was written after it, or never fsync'd, does
// not; a truncate after the fsync is undone too.
func TestCrash(t *testing.T) {
	f, backing, mnt := mount(t)
	synced, err := os.Create(filepath.Join(mnt, "synced"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synced.Write([]byte("kept-kept-kept")); err != nil {
		t.Fatal(err)
	}
	if err := synced.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := synced.WriteAt([]byte("LOST"), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := synced.WriteAt([]byte("+appended"), 14); err != nil {
		t.Fatal(err)
	}
	synced.Close()
	if err := os.WriteFile(filepath.Join(mnt, "unsynced"), []byte("never synced"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := os.OpenFile(filepath.Join(mnt, "truncated"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Write(bytes.Repeat([]byte("t"), 100)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Truncate(10); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	// Before the crash, everything reads back as written.
	if b, _ := os.ReadFile(filepath.Join(mnt, "synced")); string(b) != "kept-LOST-kept+appended" {
		t.Fatalf("before the crash: %q", b)
	}
	lost, err := f.Crash()
	if err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Error("the crash reports no lost bytes")
	}
	for name, want := range map[string]string{"synced": "kept-kept-kept", "unsynced": "", "truncated": string(bytes.Repeat([]byte("t"), 100))} {
		if b, err := os.ReadFile(filepath.Join(backing, name)); err != nil || string(b) != want {
			t.Errorf("%s after the crash = %q, %v; want %q", name, b, err, want)
		}
	}
	// Mounted again, the file system serves the rolled-back content.
	f2, err := Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Unmount()
	if b, _ := os.ReadFile(filepath.Join(mnt, "synced")); string(b) != "kept-kept-kept" {
		t.Errorf("remounted: %q", b)
	}
}
