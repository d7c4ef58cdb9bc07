package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/backup"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
)

// cli runs the mirrorkv command with the group's admin credentials in its environment.
func cli(t *testing.T, g *localgroup.Group, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), g.Env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A backup taken while 64 clients write holds exactly the writes up to its revision:
// restored into a new three-member group, every write acknowledged at or below that
// revision is there with its revision and value, none after it is, and the new group takes
// writes at revisions past it. A flipped byte in the file is refused with reason 305.
func TestBackup_UnderLoadRestoredIntoNewGroup(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	c := g.Admin()

	type acked struct {
		value string
		rev   int64
	}
	var mu sync.Mutex
	ackedPuts := map[string]acked{} // each key is written once
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				key, value := fmt.Sprintf("load/%02d/%06d", w, n), fmt.Sprintf("v%d-%d", w, n)
				opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				rev, err := c.Put(opCtx, key, []byte(value))
				cancel()
				if err == nil {
					mu.Lock()
					ackedPuts[key] = acked{value, rev}
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(time.Second)
	file := filepath.Join(t.TempDir(), "backup.mkv")
	out, err := cli(t, g, "snapshot", "save", file)
	time.Sleep(500 * time.Millisecond) // writes go on after the backup too
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	t.Logf("snapshot save: %s", strings.TrimSpace(out))
	out, err = cli(t, g, "snapshot", "inspect", "--json", file)
	if err != nil {
		t.Fatalf("snapshot inspect: %v\n%s", err, out)
	}
	var info backup.Info
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &info); err != nil {
		t.Fatalf("snapshot inspect --json: %v\n%s", err, out)
	}
	var before, after int
	for _, a := range ackedPuts {
		if a.rev <= info.Revision {
			before++
		} else {
			after++
		}
	}
	t.Logf("backup at revision %d (group %s, from %s, %d bytes); %d acknowledged writes at or below it, %d after",
		info.Revision, info.Group, info.Member, info.Size, before, after)
	if before == 0 || after == 0 {
		t.Fatalf("the backup was not taken under load: %d writes before its revision, %d after", before, after)
	}

	// A flipped byte is refused by inspect and by restore, which then leaves no directory.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	damaged := filepath.Join(t.TempDir(), "damaged.mkv")
	if err := os.WriteFile(damaged, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"snapshot", "inspect", damaged}, {"snapshot", "restore", damaged, "--dir", filepath.Join(t.TempDir(), "never"), "--name", "m1"}} {
		if out, err := cli(t, g, args...); err == nil || !strings.Contains(out, "reason 305") && !strings.Contains(out, "bad-backup") {
			t.Fatalf("%s on a damaged file: %v\n%s", args[1], err, out)
		}
	}

	// A new group whose first member starts from the backup.
	ng := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe, BeforeStart: func(ng *localgroup.Group) error {
		m := ng.Members[0]
		out, err := cli(t, g, "snapshot", "restore", file, "--dir", m.Dir, "--name", m.Name)
		if err != nil {
			return fmt.Errorf("snapshot restore: %v\n%s", err, out)
		}
		return nil
	}})
	nc := ng.Admin()
	restored := map[string]acked{}
	for kv, err := range nc.ListAll(t.Context(), "load/", 1000) {
		if err != nil {
			t.Fatal(err)
		}
		restored[kv.Key] = acked{string(kv.Value), kv.Revision}
	}
	for key, a := range ackedPuts {
		got, ok := restored[key]
		switch {
		case a.rev <= info.Revision && (!ok || got != a):
			t.Fatalf("%s, acknowledged at revision %d (the backup's is %d): restored as %+v, present %t", key, a.rev, info.Revision, got, ok)
		case a.rev > info.Revision && ok:
			t.Fatalf("%s, acknowledged at revision %d after the backup's %d, is in the restored group", key, a.rev, info.Revision)
		}
	}
	for key, got := range restored {
		if got.rev > info.Revision {
			t.Fatalf("%s has revision %d in the restored group, past the backup's %d", key, got.rev, info.Revision)
		}
	}
	if err := ng.WaitInSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	rev, err := nc.Put(t.Context(), "after-restore", []byte("x"))
	if err != nil || rev <= info.Revision {
		t.Fatalf("a write to the restored group: revision %d, %v; want one past %d", rev, err, info.Revision)
	}
	t.Logf("restored group: %d keys, all members in sync, first write at revision %d", len(restored), rev)
}
