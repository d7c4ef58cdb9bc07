package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/backup"
	"github.com/mirrorkv/mirrorkv/node"
)

func newSnapshotCmd(e *env) *cobra.Command {
	var conn connectOptions
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "back the group up to a file, check a backup, restore one into a new group",
		Long: `save asks the primary for a consistent copy of the store (every write acknowledged
before it began is in it) and writes it to a file with the group's name, the revision it
holds and a SHA-256 of its content. inspect checks a file. restore seeds the data directory
of the first member of a new group from a file; that member is then started with
--bootstrap and the others join it as usual (docs/operations.md, "Backup and restore").`,
	}
	addConnectFlags(cmd, &conn)
	cmd.AddCommand(newSnapshotSaveCmd(e, &conn), newSnapshotInspectCmd(e), newSnapshotRestoreCmd(e))
	return cmd
}

func newSnapshotSaveCmd(e *env, conn *connectOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "write a consistent copy of the group's store to FILE (admin access)",
		Long: `Stream a point-in-time copy of the store from the primary into FILE, with progress on
stderr. The copy is taken once every write committed before the request is applied, and
the primary keeps serving meanwhile. FILE is written as FILE.part and renamed when whole,
so a FILE that exists is a complete backup. An existing FILE is refused.`,
		Example: `  mirrorkv snapshot save backup-$(date +%F).mkv`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			return runSnapshotSave(e, conn, a[0])
		},
	}
}

func runSnapshotSave(e *env, conn *connectOptions, path string) (err error) {
	if _, err := os.Lstat(path); err == nil {
		return usagef("snapshot save: %s exists; give a new file name", path)
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	started := time.Now()
	stream, err := c.Backup(e.ctx)
	if err != nil {
		return err
	}
	defer stream.Body.Close()
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot save: %w (a .part file is what an interrupted save leaves: remove it)", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	version, _ := buildVersion()
	info, err := backup.Write(f, stream.Body, backup.Info{Group: stream.Group, Member: stream.Member, Created: started.UTC(), Version: version},
		progressTo(e.stderr, "saved"))
	if err != nil {
		return fmt.Errorf("snapshot save from %s: %w", stream.Member, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	fmt.Fprintf(e.stdout, "saved %s: group %s, revision %d, %s from %s in %s, sha256 %s\n", path, info.Group, info.Revision,
		byteSize(info.Size), info.Member, time.Since(started).Round(time.Millisecond), info.SHA256)
	return nil
}

func newSnapshotInspectCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "check a backup file whole and print what it holds",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			info, err := backup.Inspect(a[0], progressTo(e.stderr, "checked"))
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(info)
			}
			fmt.Fprintf(e.stdout, "%s: a whole mirrorkv backup\n  group     %s\n  taken on  %s at %s (mirrorkv %s)\n  revision  %d (raft index %d)\n  size      %s\n  sha256    %s\n",
				a[0], info.Group, info.Member, info.Created.Format(time.RFC3339), info.Version, info.Revision, info.Applied, byteSize(info.Size), info.SHA256)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the backup's description as JSON")
	return cmd
}

type snapshotRestoreOptions struct {
	Dir, Name, Group string
}

func newSnapshotRestoreCmd(e *env) *cobra.Command {
	var o snapshotRestoreOptions
	cmd := &cobra.Command{
		Use:   "restore FILE --dir DIR --name NAME",
		Short: "seed the data directory of a new group's first member from a backup",
		Long: `Check FILE whole, then make DIR (new or empty) the data directory of member NAME with
the backup's keys, revisions, leases and CRLs, and none of the old group's members. Start
that member with --bootstrap, the same --name and --group and its own certificates: it is
the primary of a new one-member group that holds the backup, and the other members are
added to it as to any group. Revisions go on from the backup's.`,
		Example: `  mirrorkv snapshot restore backup.mkv --dir /var/lib/mirrorkv --name m1
  mirrorkv serve --bootstrap --name m1 --dir /var/lib/mirrorkv ...`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			if o.Dir == "" || o.Name == "" {
				return usagef("snapshot restore: --dir and --name are required")
			}
			return runSnapshotRestore(e, a[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "the new member's data `DIR` (new or empty)")
	f.StringVar(&o.Name, "name", "", "the new member's name, as serve will be given it")
	f.StringVar(&o.Group, "group", "", "the new group's name (default: the backup's)")
	return cmd
}

func runSnapshotRestore(e *env, path string, o snapshotRestoreOptions) error {
	body, info, err := backup.Open(path, progressTo(e.stderr, "checked"))
	if err != nil {
		return err
	}
	defer body.Close()
	group := o.Group
	if group == "" {
		group = info.Group
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	progress := progressTo(e.stderr, "restored")
	if err := node.SeedDir(dir, o.Name, group, &countingReader{r: body, fn: progress}); err != nil {
		return err
	}
	progress(info.Size)
	fmt.Fprintf(e.stdout, `restored %s into %s: group %s, revision %d, taken on %s at %s
Start the new group's first member with this directory:
  mirrorkv serve --bootstrap --name %s --group %s --dir %s ...
then add the other members as to any group (mirrorkv member add).
`, path, dir, group, info.Revision, info.Member, info.Created.Format(time.RFC3339), o.Name, group, dir)
	return nil
}

// progressTo reports a long copy on w, one line a second from the first second on.
func progressTo(w io.Writer, verb string) func(int64) {
	last := time.Now()
	return func(n int64) {
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "%s %s\n", verb, byteSize(n))
	}
}

type countingReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		c.fn(c.n)
	}
	return n, err
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
