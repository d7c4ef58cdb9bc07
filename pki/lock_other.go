//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockWait is how long lockPath waits for another command before giving up.
const lockWait = 30 * time.Second

// lockPath creates path exclusively, waiting while another command holds it, and removes
// it on release. Without flock a crash leaves the file behind; the error says to remove it.
func lockPath(path string) (func(), error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, modeSecret)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create CA lock file %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("CA directory locked by %s for %v; if no other 'mirrorkv ca' command is running, remove that file", path, lockWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
