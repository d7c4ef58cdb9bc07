package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
)

// The parts of bbolt's on-disk meta page (format version 2) that checkLength reads. bbolt
// writes the struct in native byte order, after a 16-byte page header.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaSize   = 64 // magic, version, pageSize, flags, root(16), freelist, pgid, txid, checksum
	boltMetaSummed = 56 // the checksum covers everything before it
)

// CheckBoltFile refuses a store file that is shorter than its own meta pages say.
//
// bbolt maps the file and follows page numbers without checking them against its size, so a
// file cut short (a copy that stopped halfway, a restore from a partial backup) crashes the
// process with SIGBUS inside bolt.Open instead of returning an error. The meta page with the
// highest transaction id records the file's high-water mark; a shorter file is damaged. This
// catches truncation only: damage inside the file is bbolt's to find.
func CheckBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil // bbolt initialises an empty file
	}
	var best *boltMeta
	pageSize := int64(os.Getpagesize())
	for i := range int64(2) {
		m, ok := readBoltMeta(f, i*pageSize)
		if !ok {
			continue
		}
		if i == 0 {
			pageSize = int64(m.pageSize)
		}
		if best == nil || m.txid > best.txid {
			best = &m
		}
	}
	if best == nil {
		return nil // no valid meta page: bolt.Open reports the file as invalid
	}
	if need := int64(best.pgid) * int64(best.pageSize); need > size || best.pgid > 1<<40 {
		return damaged(path, fmt.Errorf("file is %d bytes, shorter than the %d its meta page records: it was cut short", size, need))
	}
	return nil
}

type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// readBoltMeta reads the meta page at off and reports whether it is valid.
func readBoltMeta(r io.ReaderAt, off int64) (boltMeta, bool) {
	var buf [boltPageHeader + boltMetaSize]byte
	if _, err := r.ReadAt(buf[:], off); err != nil {
		return boltMeta{}, false
	}
	b := buf[boltPageHeader:]
	ne := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(b[:boltMetaSummed]) // a hash never fails
	if ne.Uint32(b) != boltMagic || ne.Uint32(b[4:]) != boltVersion || ne.Uint64(b[boltMetaSummed:]) != h.Sum64() {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: ne.Uint32(b[8:]), pgid: ne.Uint64(b[40:]), txid: ne.Uint64(b[48:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 {
		return boltMeta{}, false
	}
	return m, true
}
