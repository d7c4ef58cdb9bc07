package node

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// RecoveryMembers reads, from the data directory dir of the stopped member from, the
// members its store records, for the check that no majority of the old voters answers.
func RecoveryMembers(dir, from string) ([]store.Member, error) {
	if err := checkIdentity(dir, from); err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(dir, "store.db"), store.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Members()
}

// Recover makes the stopped member from, whose data directory is dir, the only voter of a
// new configuration with the data it has, keeping the async members named in keep as
// non-voters, and withdraws the authorisation of every other member (cluster.Recover).
// Started again, it leads the new configuration.
func Recover(dir, from string, keep []string, log *slog.Logger) (wire.Recovery, error) {
	if err := checkIdentity(dir, from); err != nil {
		return wire.Recovery{}, err
	}
	st, err := store.Open(filepath.Join(dir, "store.db"), store.Options{Logger: log.With("component", "store")})
	if err != nil {
		return wire.Recovery{}, err
	}
	ms, err := st.Members()
	if err != nil {
		_ = st.Close()
		return wire.Recovery{}, err
	}
	var self store.Member
	for _, m := range ms {
		if m.Name == from {
			self = m
		}
	}
	if self.MemberAddr == "" {
		_ = st.Close()
		return wire.Recovery{}, fmt.Errorf("recover %s: its store holds no record of it: %w", from, cluster.ErrUnknownMember)
	}
	cfg := cluster.Config{Name: from, Dir: filepath.Join(dir, "raft"), Advertise: self.MemberAddr}
	rec, err := cluster.Recover(cfg, st, keep, log)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	return rec, err
}

// checkIdentity checks that dir is the data directory of member name.
func checkIdentity(dir, name string) error {
	data, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return fmt.Errorf("read the member identity of %s: %w", dir, err)
	}
	var id identity
	if err := json.Unmarshal(data, &id); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, identityFile), err)
	}
	if id.Name != name {
		return fmt.Errorf("%w: %s holds member %q, not %q", ErrForeignDir, dir, id.Name, name)
	}
	return nil
}
