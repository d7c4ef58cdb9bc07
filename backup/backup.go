// Package backup owns mirrorkv's backup file: a store snapshot taken on the primary, as
// `mirrorkv snapshot save` writes it, `snapshot inspect` checks it and `snapshot restore`
// seeds a new group from it.
//
// The file is the snapshot stream of docs/storage.md as the primary sent it, then a trailer
// that says what it holds and how to check it:
//
//	body     the store snapshot stream (Info.Size bytes; it ends with its own CRC-32C)
//	trailer  Info as JSON
//	length   the trailer's length, 8 bytes big-endian
//	magic    "MKVBAK01"
//
// The trailer comes last so that the file is written in one pass as the stream arrives,
// and a file cut short anywhere lacks the magic at its end. Info.SHA256 covers the body:
// every byte is checked before a restore reads any.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// Magic ends every backup file.
const Magic = "MKVBAK01"

// Format is the version of Info's layout this package writes.
const Format = 1

// maxTrailer bounds the trailer a reader accepts: a real one is a few hundred bytes.
const maxTrailer = 64 << 10

// ErrBad is wrapped by every error about a file that is not a whole, unchanged backup; it
// carries reason.BadBackup.
var ErrBad = errors.New("not a whole mirrorkv backup")

// Info describes a backup: where it came from, the state it holds, and its checksum.
type Info struct {
	Format   int       `json:"format"`
	Group    string    `json:"group"`    // the group it was taken from
	Member   string    `json:"member"`   // the primary that served it
	Created  time.Time `json:"created"`  // when the stream began
	Applied  uint64    `json:"applied"`  // the raft index the store reflected
	Revision int64     `json:"revision"` // the store's revision: every write up to it is in
	Size     int64     `json:"size"`     // bytes of the snapshot stream
	SHA256   string    `json:"sha256"`   // hex SHA-256 of the snapshot stream
	Version  string    `json:"version"`  // the mirrorkv that wrote the file
}

func bad(format string, args ...any) error {
	return reason.Wrap(reason.BadBackup, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrBad))
}

// Write copies the snapshot stream from body to w and appends the trailer, filling in
// info's Size, SHA256, Applied and Revision (from the stream's meta record) and Format.
// progress, if not nil, is called with the bytes copied so far as they arrive.
func Write(w io.Writer, body io.Reader, info Info, progress func(int64)) (Info, error) {
	h := sha256.New()
	head := &headBuffer{max: 64}
	pw := &progressWriter{fn: progress}
	n, err := io.Copy(io.MultiWriter(w, h, head, pw), body)
	if err != nil {
		return info, fmt.Errorf("copy the snapshot stream after %d bytes: %w", n, err)
	}
	info.Applied, info.Revision, err = store.SnapshotHeader(bytes.NewReader(head.b))
	if err != nil {
		return info, reason.Wrap(reason.BadBackup, fmt.Errorf("the stream received: %w", err))
	}
	info.Format, info.Size, info.SHA256 = Format, n, hex.EncodeToString(h.Sum(nil))
	trailer, err := json.Marshal(info)
	if err != nil {
		return info, fmt.Errorf("encode the backup's trailer: %w", err)
	}
	trailer = binary.BigEndian.AppendUint64(trailer, uint64(len(trailer)))
	if _, err := w.Write(append(trailer, Magic...)); err != nil {
		return info, fmt.Errorf("write the backup's trailer: %w", err)
	}
	return info, nil
}

// Inspect reads the trailer of the backup at path and checks the body against it, calling
// progress with the bytes checked so far. A file that is truncated, changed or not a
// backup fails with an error that wraps ErrBad and carries reason.BadBackup.
func Inspect(path string, progress func(int64)) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	info, err := readTrailer(f, path)
	if err != nil {
		return info, err
	}
	h := sha256.New()
	pw := &progressWriter{fn: progress}
	if _, err := io.Copy(io.MultiWriter(h, pw), io.NewSectionReader(f, 0, info.Size)); err != nil {
		return info, fmt.Errorf("read backup %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.SHA256 {
		return info, bad("backup %s: its content has SHA-256 %s, but the file says %s: the file was changed or damaged since it was written", path, got, info.SHA256)
	}
	return info, nil
}

// Open checks the backup at path as Inspect does and returns its snapshot stream; the
// caller closes it. The file is read twice: once to check it whole before anything is
// restored from it.
func Open(path string, progress func(int64)) (io.ReadCloser, Info, error) {
	info, err := Inspect(path, progress)
	if err != nil {
		return nil, info, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, info, fmt.Errorf("open backup: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{bufio.NewReaderSize(io.NewSectionReader(f, 0, info.Size), 256<<10), f}, info, nil
}

func readTrailer(f *os.File, path string) (Info, error) {
	var info Info
	fi, err := f.Stat()
	if err != nil {
		return info, fmt.Errorf("read backup %s: %w", path, err)
	}
	size := fi.Size()
	tail := make([]byte, 16)
	if size < int64(len(tail)) {
		return info, bad("backup %s: %d bytes is too short to be a backup (truncated, or not a backup)", path, size)
	}
	if _, err := f.ReadAt(tail, size-16); err != nil {
		return info, fmt.Errorf("read backup %s: %w", path, err)
	}
	if string(tail[8:]) != Magic {
		return info, bad("backup %s does not end with %q: it is truncated, or not a mirrorkv backup", path, Magic)
	}
	n := binary.BigEndian.Uint64(tail[:8])
	if n == 0 || n > maxTrailer || int64(n) > size-16 {
		return info, bad("backup %s: its trailer length %d does not fit the file of %d bytes", path, n, size)
	}
	trailer := make([]byte, n)
	if _, err := f.ReadAt(trailer, size-16-int64(n)); err != nil {
		return info, fmt.Errorf("read backup %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(trailer))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return info, bad("backup %s: its trailer is not readable: %v", path, err)
	}
	switch {
	case info.Format != Format:
		return info, bad("backup %s has format %d; this mirrorkv reads format %d", path, info.Format, Format)
	case info.Size != size-16-int64(n):
		return info, bad("backup %s: the trailer says %d bytes of snapshot, the file holds %d", path, info.Size, size-16-int64(n))
	case len(info.SHA256) != 2*sha256.Size:
		return info, bad("backup %s: the trailer's checksum %q is not a SHA-256", path, info.SHA256)
	}
	return info, nil
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// progressWriter reports the bytes written so far, at most every 100 ms and at the end.
type progressWriter struct {
	fn   func(int64)
	n    int64
	last time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.fn != nil && time.Since(p.last) >= 100*time.Millisecond {
		p.last = time.Now()
		p.fn(p.n)
	}
	return len(b), nil
}
