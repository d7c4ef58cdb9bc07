//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package pki

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockPath takes an exclusive flock on path, created if missing. flock belongs to the open
// file, so it also keeps apart two goroutines of one process that each open the CA. The
// kernel drops it when the process dies: a crash leaves no stale lock.
func lockPath(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, modeSecret)
	if err != nil {
		return nil, fmt.Errorf("open CA lock file %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock CA directory with %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
