package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/mirrorkv/mirrorkv/reason"
)

// identityFile records, in the data directory, which member of which group the directory
// belongs to.
const identityFile = "member.json"

// ErrForeignDir is returned when the data directory belongs to another member or group.
var ErrForeignDir = errors.New("data directory belongs to another member or group")

type identity struct {
	Name  string `json:"name"`
	Group string `json:"group"`
}

// claimDir makes dir the data directory of member name of group, or checks that it already
// is. A directory of another member or group is refused: its raft log and store would
// otherwise be served as this member's, or mixed into another group's history.
func claimDir(dir, name, group string) error {
	if err := checkDirMode(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, identityFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var id identity
		if err := json.Unmarshal(data, &id); err != nil {
			return fmt.Errorf("read %s: %w: the file is damaged; if this directory is this member's, restore the file as {\"name\":%q,\"group\":%q}", path, err, name, group)
		}
		if id.Name != name || id.Group != group {
			return fmt.Errorf("%w: %s holds member %q of group %q, but this is member %q of group %q; point --dir at this member's own directory, or at an empty one to join afresh", ErrForeignDir, dir, id.Name, id.Group, name, group)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read data directory %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s is not empty and has no %s, so it is not a mirrorkv member's directory; use an empty directory", ErrForeignDir, dir, identityFile)
	}
	data, err = json.Marshal(identity{Name: name, Group: group})
	if err != nil {
		return err
	}
	// Synced before and after the rename: a member whose power went just after it claimed
	// the directory must find the file whole, not empty (TestFault_PowerLoss found it empty).
	files := []stagedFile{{target: path, data: append(data, '\n'), mode: 0o600}}
	if err := stage(files); err != nil {
		return err
	}
	return commit(files)
}

// checkDirMode refuses an existing data directory that grants any permission to its group
// or to other users: it holds the raft log, the snapshots and the store, every value ever
// written. mirrorkv creates what it writes there private to its user (0700 directories,
// 0600 files); the directory itself is where an operator's mkdir or umask would show.
// Windows has no mode bits.
func checkDirMode(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // created 0700 below
	}
	if err != nil {
		return fmt.Errorf("check data directory %s: %w", dir, err)
	}
	if mode := fi.Mode().Perm(); fi.IsDir() && mode&0o077 != 0 {
		return reason.Wrap(reason.DirMode, fmt.Errorf("data directory %s has mode %#o, open to other users: run chmod 700 %s (and chmod -R go-rwx %s for files an older mirrorkv left readable)", dir, mode, dir, dir))
	}
	return nil
}
