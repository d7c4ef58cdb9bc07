//go:build unix

package node

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// withUmask022 runs the test under the umask most hosts have, which leaves files 0644 and
// directories 0755 unless their creator asks for less.
func withUmask022(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestClaimDir_Mode(t *testing.T) {
	withUmask022(t)
	t.Run("new directory is 0700", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := claimDir(dir, "m1", "g"); err != nil {
			t.Fatal(err)
		}
		assertPrivate(t, dir)
	})
	for _, mode := range []fs.FileMode{0o755, 0o750, 0o701, 0o770} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			err := claimDir(dir, "m1", "g")
			if reason.Of(err, reason.OK) != reason.DirMode || !strings.Contains(err.Error(), "chmod 700 "+dir) {
				t.Fatalf("claim a %v directory = %v, want reason DirMode and chmod 700 %s", mode, err, dir)
			}
			if _, err := os.Stat(filepath.Join(dir, identityFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused directory was claimed: %v", err)
			}
		})
	}
	t.Run("0700 is accepted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := claimDir(dir, "m1", "g"); err != nil {
			t.Fatal(err)
		}
	})
}

// assertPrivate fails for every file or directory under root that grants any permission
// to its group or to other users.
func assertPrivate(t testing.TB, root string) {
	t.Helper()
	open, err := openToOthers(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range open {
		t.Errorf("%s: open to other users", p)
	}
}

func openToOthers(root string) ([]string, error) {
	var open []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return nil // DIR/tls links to the flags' files; a link's own mode grants nothing
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			open = append(open, fmt.Sprintf("%s (mode %#o)", path, mode))
		}
		return nil
	})
	return open, err
}

// A member writes nothing into its data directory that another user of the host could
// read: not the raft log (either store), not a snapshot, not the store file.
func TestNode_DataDirPrivate(t *testing.T) {
	withUmask022(t)
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	admin := cca.Issue(pkitest.Spec{CN: "admin", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []string{"urn:mirrorkv:access:admin"}})
	for _, logStore := range []string{"wal", "bolt"} {
		t.Run(logStore, func(t *testing.T) {
			cfg := testMember(t, rca, cca, rca.Member("m1"))
			cfg.Cluster.LogStore, cfg.Cluster.SnapshotThreshold, cfg.Cluster.SnapshotInterval = logStore, 1, 50*time.Millisecond
			n, err := New(cfg, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- n.Run(t.Context()) }()
			t.Cleanup(func() { n.Close(); <-done })
			tlsCfg, err := client.LoadTLS(rca.CertPath, admin.CertPath, admin.KeyPath)
			if err != nil {
				t.Fatal(err)
			}
			c, err := client.New(client.Config{Endpoints: []string{"https://" + cfg.ClientListen}, TLS: tlsCfg, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitPrimary(t, c)
			for _, k := range []string{"a", "b", "c"} {
				if _, err := c.Put(t.Context(), k, []byte("v")); err != nil {
					t.Fatalf("put: %v", err)
				}
			}
			snaps := filepath.Join(cfg.Dir, "raft", "snapshots")
			deadline := time.Now().Add(20 * time.Second)
			for {
				ents, _ := os.ReadDir(snaps)
				if len(ents) > 0 && !strings.HasSuffix(ents[0].Name(), ".tmp") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no snapshot in %s after 20s", snaps)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The snapshot is tightened right after raft renames it into place.
			for time.Now().Before(deadline) {
				if open, err := openToOthers(cfg.Dir); err == nil && len(open) == 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			assertPrivate(t, cfg.Dir)
		})
	}
}
