package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes: private keys and CA records are readable by the owner only; certificates and
// CRLs are public.
const (
	modeSecret fs.FileMode = 0o600
	modePublic fs.FileMode = 0o644
)

// fileSpec is one file of a group written together.
type fileSpec struct {
	path string
	data []byte
	mode fs.FileMode
}

// writeFileAtomic writes data to path so that path holds either its old content or all of
// data, never part of it, even after a crash.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return writeFilesAtomic([]fileSpec{{path, data, mode}})
}

// writeFilesAtomic writes every file to a temp file beside its target and fsyncs it, and only
// then renames them all into place, so that a failure while writing leaves nothing behind.
func writeFilesAtomic(files []fileSpec) (err error) {
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			os.Remove(t) // after a successful rename the temp name no longer exists
		}
	}()
	for _, f := range files {
		tmp, err := writeTemp(f)
		if err != nil {
			return err
		}
		temps = append(temps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(temps[i], f.path); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return syncDirs(files)
}

func writeTemp(f fileSpec) (string, error) {
	dir, base := filepath.Split(f.path)
	if dir == "" {
		dir = "."
	}
	t, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	name := t.Name()
	err = errors.Join(t.Chmod(f.mode), write(t, f.data), t.Sync(), t.Close())
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	return name, nil
}

func write(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// syncDirs fsyncs the directories holding files so that the renames survive a crash.
func syncDirs(files []fileSpec) error {
	seen := map[string]bool{}
	for _, f := range files {
		dir := filepath.Dir(f.path)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		d, err := os.Open(dir)
		if err != nil {
			return fmt.Errorf("sync directory %s: %w", dir, err)
		}
		err = errors.Join(d.Sync(), d.Close())
		if err != nil {
			return fmt.Errorf("sync directory %s: %w", dir, err)
		}
	}
	return nil
}

// exists reports whether path names an existing file or directory.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// WriteCertFile writes a PEM certificate (or bundle) to path atomically, mode 0644.
func WriteCertFile(path string, certPEM []byte) error {
	return writeFileAtomic(path, certPEM, modePublic)
}
