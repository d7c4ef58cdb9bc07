package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCheckKeyFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Log("Windows has no group and other mode bits; CheckKeyFileMode only checks the file exists there")
		return
	}
	for _, tc := range []struct {
		name string
		mode fs.FileMode
		ok   bool
	}{
		{"owner read-write", 0o600, true},
		{"owner read-only", 0o400, true},
		{"group read", 0o640, false},
		{"world read", 0o644, false},
		{"other read only", 0o604, false},
		{"group write", 0o620, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m1.key")
			if err := os.WriteFile(path, []byte("key"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			err := CheckKeyFileMode(path)
			if tc.ok != (err == nil) {
				t.Fatalf("CheckKeyFileMode(%o) = %v, want ok %v", tc.mode, err, tc.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", tc.mode)) {
				t.Fatalf("error %q: want ErrKeyFileMode naming the file, its mode and chmod 600", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		err := CheckKeyFileMode(filepath.Join(t.TempDir(), "none.key"))
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrKeyFileMode) {
			t.Fatalf("CheckKeyFileMode of a missing file = %v, want fs.ErrNotExist", err)
		}
	})
}
