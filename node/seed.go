package node

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/mirrorkv/mirrorkv/store"
)

// storeFile is the store's file in the data directory.
const storeFile = "store.db"

// SeedDir makes dir, which must be new or empty, the data directory of member name of
// group with the store of a backup as its state: `serve --bootstrap` with that directory
// then starts a new group holding the backup's keys, with this member as its only member
// (docs/operations.md, "Backup and restore").
func SeedDir(dir, name, group string, backup io.Reader) (err error) {
	if err := claimDir(dir, name, Config{Group: group}.group()); err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(dir, storeFile), store.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	if err := st.Seed(backup); err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	return nil
}
