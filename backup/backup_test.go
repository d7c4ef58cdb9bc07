package backup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// snapshotOf returns the snapshot stream of a store holding n keys.
func snapshotOf(t testing.TB, n int) []byte {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "store.db"), store.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var es []store.Entry
	for i := range n {
		es = append(es, store.Entry{Index: uint64(i + 1), Data: store.EncodeCommand(store.Command{Op: store.OpPut, Key: string(rune('a'+i%26)) + "/k", Value: bytes.Repeat([]byte{'v'}, 100)})})
	}
	s.ApplyBatch(es)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var b bytes.Buffer
	if _, err := snap.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeBackup(t *testing.T, body []byte) (string, Info) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.mkv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	info, err := Write(f, bytes.NewReader(body), Info{Group: "g", Member: "m1", Created: time.Unix(1, 0).UTC(), Version: "test"}, func(n int64) { last = n })
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if last != int64(len(body)) {
		t.Errorf("the last progress report said %d bytes, want %d", last, len(body))
	}
	return path, info
}

func TestWriteInspectOpen(t *testing.T) {
	body := snapshotOf(t, 40)
	path, info := writeBackup(t, body)
	if info.Applied != 40 || info.Revision != 40 || info.Size != int64(len(body)) || info.Format != Format {
		t.Fatalf("Write filled in %+v; want applied 40, revision 40, size %d", info, len(body))
	}
	got, err := Inspect(path, nil)
	if err != nil || got != info {
		t.Fatalf("Inspect = %+v, %v; want %+v", got, err, info)
	}
	r, _, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := store.Open(filepath.Join(t.TempDir(), "seeded.db"), store.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Seed(r); err != nil {
		t.Fatalf("seed from the backup: %v", err)
	}
	if s.Revision() != 40 {
		t.Errorf("seeded revision %d, want 40", s.Revision())
	}
}

// Every kind of damage is refused with reason bad-backup before anything is restored.
func TestInspect_Damage(t *testing.T) {
	body := snapshotOf(t, 10)
	path, _ := writeBackup(t, body)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(whole); b[i] ^= 0x01; return b }
	cases := map[string][]byte{
		"empty":               {},
		"truncated by a byte": whole[:len(whole)-1],
		"truncated body":      append(bytes.Clone(whole[:len(body)/2]), whole[len(body):]...),
		"body only":           whole[:len(body)],
		"flipped body byte":   flip(len(body) / 3),
		"flipped last body":   flip(len(body) - 1),
		"flipped trailer":     flip(len(body) + 5),
		"flipped length":      flip(len(whole) - 9),
		"flipped magic":       flip(len(whole) - 1),
		"not a backup":        []byte("hello, this is not a backup at all, just text\n"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Inspect(p, nil)
			if !errors.Is(err, ErrBad) || reason.Of(err, reason.OK) != reason.BadBackup {
				t.Fatalf("Inspect = %v; want ErrBad with reason bad-backup", err)
			}
			if _, _, err := Open(p, nil); !errors.Is(err, ErrBad) {
				t.Fatalf("Open = %v; want ErrBad", err)
			}
		})
	}
}

// A stream that is not a snapshot is refused as it is saved, not only when restored.
func TestWrite_NotASnapshot(t *testing.T) {
	_, err := Write(&bytes.Buffer{}, bytes.NewReader([]byte("<html>proxy error</html>")), Info{}, nil)
	if !errors.Is(err, store.ErrBadSnapshot) || reason.Of(err, reason.OK) != reason.BadBackup {
		t.Fatalf("Write(html) = %v; want a bad snapshot with reason bad-backup", err)
	}
}

func FuzzInspect(f *testing.F) {
	body := snapshotOf(f, 3)
	var b bytes.Buffer
	if _, err := Write(&b, bytes.NewReader(body), Info{Group: "g"}, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(Magic))
	f.Add(append(make([]byte, 8), Magic...))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := Inspect(p, nil)
		if err != nil {
			if !errors.Is(err, ErrBad) {
				t.Fatalf("Inspect = %v, not ErrBad", err)
			}
			return
		}
		if info.Size > int64(len(data)) {
			t.Fatalf("accepted a trailer claiming %d bytes in a file of %d", info.Size, len(data))
		}
	})
}
