package pki

import (
	"fmt"
	"os"
	"runtime"
)

// CheckKeyFileMode returns an error wrapping ErrKeyFileMode when the private key file at
// path grants any permission to its group or to others (mode&0o077 != 0). It follows a
// symbolic link to the file itself. Windows has no such mode bits, so there it only checks
// that the file exists.
func CheckKeyFileMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check key file mode: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %04o, open to other users; run chmod 600 %s: %w", path, m, path, ErrKeyFileMode)
	}
	return nil
}
