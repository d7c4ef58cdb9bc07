package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
)

// restoreChunk bounds the dirty pages of one transaction of the restore file, so that a
// large snapshot is not held in memory whole.
const restoreChunk = 4 << 20

// Restore replaces the whole state with the snapshot read from r.
//
// It builds a new bbolt file next to the store (path + ".restore"), checking the stream
// record by record, fsyncs it, and only then closes the store, renames the new file over it
// and reopens. A stream that is truncated, damaged or unreadable therefore leaves the store
// as it was; the error wraps ErrBadSnapshot and says what was wrong. Reads go on during the
// build and wait only for the swap; the swap also waits for open snapshots to be released.
//
// Under write-behind, what was applied but not yet committed is dropped with the rest of the
// old state.
func (s *Store) Restore(r io.Reader) error {
	s.flushMu.Lock() // no flush may commit the old state into the new file
	defer s.flushMu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed() {
		return fmt.Errorf("restore snapshot: %w", ErrClosed)
	}
	tmp := s.path + restoreSuffix
	meta, err := s.build(tmp, r)
	if err == nil && s.closed() {
		err = ErrClosed
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("cannot remove the restore file; Open removes it next time", "file", tmp, "err", rerr)
		}
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := s.swap(tmp, meta); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return nil
}

func (s *Store) closed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// snapMeta is the meta record of a snapshot.
type snapMeta struct {
	applied  uint64
	revision int64
}

// build writes the snapshot from r into a new bbolt file at tmp.
func (s *Store) build(tmp string, r io.Reader) (snapMeta, error) {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return snapMeta{}, fmt.Errorf("remove old restore file %s: %w", tmp, err)
	}
	// No fsync per transaction: the file means nothing until the rename, and one Sync at the
	// end makes all of it durable first.
	db, err := bolt.Open(tmp, 0o600, boltOptions(true))
	if err != nil {
		return snapMeta{}, fmt.Errorf("create restore file %s: %w", tmp, err)
	}
	w := &restoreWriter{db: db, closing: s.closing}
	meta, err := s.fill(w, r)
	if err != nil {
		w.abort()
		_ = db.Close() // the fill error is the one to report, and the file is removed
		return snapMeta{}, err
	}
	if !s.noFsync {
		if err := db.Sync(); err != nil {
			_ = db.Close() // the sync error is the one to report
			return snapMeta{}, fmt.Errorf("sync restore file %s: %w", tmp, err)
		}
	}
	if err := db.Close(); err != nil {
		return snapMeta{}, fmt.Errorf("close restore file %s: %w", tmp, err)
	}
	return meta, nil
}

// fill reads the stream into w and writes the meta bucket last.
func (s *Store) fill(w *restoreWriter, r io.Reader) (snapMeta, error) {
	if err := w.db.Update(initBuckets); err != nil {
		return snapMeta{}, fmt.Errorf("create buckets: %w", err)
	}
	meta, err := readSnapshot(r, w)
	if err != nil {
		return snapMeta{}, err
	}
	if err := w.put(bucketMeta, []byte(metaApplied), u64(meta.applied)); err != nil {
		return snapMeta{}, err
	}
	if err := w.put(bucketMeta, []byte(metaRevision), u64(uint64(meta.revision))); err != nil {
		return snapMeta{}, err
	}
	if err := w.put(bucketMeta, []byte(metaSumKey), metaSum(meta.applied, meta.revision)); err != nil {
		return snapMeta{}, err
	}
	if err := w.commit(); err != nil {
		return snapMeta{}, err
	}
	return meta, nil
}

// swap closes the store, renames tmp over it and reopens it.
func (s *Store) swap(tmp string, meta snapMeta) error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	// The old file is renamed over while still open: snapshots being streamed from it keep
	// reading the old inode, and it is closed once they are released. Closing it here would
	// wait for them, and raft may hold one in a goroutine that waits for the very restore
	// this is (its snapshot thread asks the main loop, busy installing, for the
	// configuration): a deadlock seen with a 200 MB catch-up.
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp) // the store file is untouched; the restore is abandoned
		return fmt.Errorf("rename %s over %s: %w", tmp, s.path, err)
	}
	if !s.noFsync {
		if err := syncDir(dirOf(s.path)); err != nil {
			// The new state is in place and is what the member serves; a crash before the
			// directory reaches the disk brings the old file back, which raft then brings
			// up to date like any member that restarts behind.
			s.log.Warn("restored snapshot may not survive a crash", "err", err)
		}
	}
	db, err := openDB(s.path, s.noFsync)
	if err != nil {
		return fmt.Errorf("reopen store after restore: %w; restart the member", err)
	}
	old := s.db
	s.db = db
	if err := s.loadLeases(db); err != nil {
		s.log.Error("read the leases of the restored snapshot", "err", err)
	}
	if s.flushKick != nil {
		s.ovMu.Lock()
		s.active, s.flushing = newOverlay(), nil
		s.publishChanges()
		s.stall.Store(nil) // a flush that failed has nothing left to commit
		close(s.flushed)   // wakes an ApplyBatch waiting for room
		s.flushed = make(chan struct{})
		s.ovMu.Unlock()
	}
	s.applied.Store(meta.applied)
	s.revision.Store(meta.revision)
	s.changesFrom.Store(meta.revision + 1) // the change log starts over at the snapshot
	s.notifyCRL()                          // the snapshot may bring other CRLs, or none
	s.notifyChanged()
	s.retired.Go(func() {
		if err := old.Close(); err != nil {
			s.log.Warn("close the store file replaced by a snapshot", "err", err)
		}
	})
	return nil
}

// restoreWriter writes the records of a snapshot into the restore file, committing every
// restoreChunk bytes.
type restoreWriter struct {
	db      *bolt.DB
	closing <-chan struct{}
	tx      *bolt.Tx
	size    int
}

func (w *restoreWriter) put(bucket string, k, v []byte) error {
	if w.tx == nil {
		tx, err := w.db.Begin(true)
		if err != nil {
			return fmt.Errorf("begin restore transaction: %w", err)
		}
		w.tx = tx
		// Keys arrive in order, so full pages are right: bbolt would otherwise leave half of
		// every page empty for inserts that never come.
		for _, name := range []string{bucketKV, bucketMembers, bucketCRLs, bucketMeta} {
			tx.Bucket([]byte(name)).FillPercent = 1
		}
	}
	if err := w.tx.Bucket([]byte(bucket)).Put(k, v); err != nil {
		return fmt.Errorf("write %s %q to the restore file: %w", bucket, k, err)
	}
	w.size += len(k) + len(v)
	if w.size >= restoreChunk {
		return w.commit()
	}
	return nil
}

func (w *restoreWriter) commit() error {
	if w.tx == nil {
		return nil
	}
	tx := w.tx
	w.tx, w.size = nil, 0
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write restore file: %w", err)
	}
	select {
	case <-w.closing:
		return ErrClosed
	default:
		return nil
	}
}

func (w *restoreWriter) abort() {
	if w.tx != nil {
		_ = w.tx.Rollback() // the file is about to be removed
		w.tx = nil
	}
}

// readSnapshot checks the stream r record by record and hands each record to w.
func readSnapshot(r io.Reader, w *restoreWriter) (snapMeta, error) {
	d := &snapReader{r: bufio.NewReaderSize(r, 64<<10), tab: crc32.MakeTable(crc32.Castagnoli)}
	magic, err := d.read("magic", len(snapshotMagic), 0)
	if err != nil {
		return snapMeta{}, err
	}
	if string(magic) != snapshotMagic {
		return snapMeta{}, d.bad("magic %q is not %q: not a mirrorkv snapshot", magic, snapshotMagic)
	}
	meta, err := d.meta()
	if err != nil {
		return snapMeta{}, err
	}
	var lastKey []byte
	var lastMember, lastCRL string
	members, crls := false, false
	leases := &leaseReader{}
	for {
		sumBefore := d.crc
		t, err := d.byte("record type")
		if err != nil {
			return snapMeta{}, err
		}
		switch t {
		case recKV:
			if members || crls || leases.seen {
				return snapMeta{}, d.bad("kv record after the member or CRL records")
			}
			if lastKey, err = d.kv(meta, lastKey, w); err != nil {
				return snapMeta{}, err
			}
		case recMember:
			if crls || leases.seen {
				return snapMeta{}, d.bad("member record after the CRL records")
			}
			members = true
			if lastMember, err = d.member(lastMember, w); err != nil {
				return snapMeta{}, err
			}
		case recCRL:
			if leases.seen {
				return snapMeta{}, d.bad("CRL record after the lease records")
			}
			crls = true
			if lastCRL, err = d.crl(lastCRL, w); err != nil {
				return snapMeta{}, err
			}
		case recLease:
			if err := leases.read(d, w); err != nil {
				return snapMeta{}, err
			}
		case recEnd:
			return meta, d.end(sumBefore)
		default:
			return snapMeta{}, d.bad("unknown record type %#x", t)
		}
	}
}

// snapReader reads the snapshot stream, keeping the CRC of what it consumed and its offset
// for error messages.
type snapReader struct {
	r    *bufio.Reader
	tab  *crc32.Table
	crc  uint32
	off  int64
	one  [1]byte
	rerr error // the last error of the underlying reader, to tell it from a varint overflow
}

func (d *snapReader) bad(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s: %w", d.off, fmt.Sprintf(format, args...), ErrBadSnapshot)
}

// readErr describes a failure to read what; every such failure wraps ErrBadSnapshot too,
// since the stream did not deliver a whole snapshot.
func (d *snapReader) readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("at byte %d: truncated in %s: %w", d.off, what, ErrBadSnapshot)
	}
	return fmt.Errorf("at byte %d: read %s: %w: %w", d.off, what, ErrBadSnapshot, err)
}

// ReadByte makes snapReader an io.ByteReader for binary.ReadUvarint.
func (d *snapReader) ReadByte() (byte, error) {
	b, err := d.r.ReadByte()
	if err != nil {
		d.rerr = err
		return 0, err
	}
	d.one[0] = b
	d.crc = crc32.Update(d.crc, d.tab, d.one[:])
	d.off++
	return b, nil
}

func (d *snapReader) byte(what string) (byte, error) {
	b, err := d.ReadByte()
	if err != nil {
		return 0, d.readErr(what, err)
	}
	return b, nil
}

// uvarint reads a minimal uvarint no larger than limit.
func (d *snapReader) uvarint(what string, limit uint64) (uint64, error) {
	start := d.off
	d.rerr = nil
	v, err := binary.ReadUvarint(d)
	switch {
	case err != nil && d.rerr == nil:
		return 0, d.bad("%s overflows 64 bits", what)
	case err != nil:
		return 0, d.readErr(what, err)
	case d.off-start != int64(uvarintLen(v)):
		return 0, d.bad("%s is not a minimal uvarint", what)
	case v > limit:
		return 0, d.bad("%s is %d, above the limit of %d", what, v, limit)
	}
	return v, nil
}

// read reads n bytes into a new buffer after reserve zero bytes, so that a value can be read
// straight into the record that holds it. The buffer grows with what arrives, so a hostile
// length costs no more memory than the bytes actually sent.
func (d *snapReader) read(what string, n, reserve int) ([]byte, error) {
	var buf []byte
	if n <= 64<<10 {
		buf = make([]byte, reserve+n)
		m, err := io.ReadFull(d.r, buf[reserve:])
		d.off += int64(m)
		if err != nil {
			return nil, d.readErr(what, err)
		}
	} else {
		bb := bytes.NewBuffer(make([]byte, reserve, reserve+64<<10))
		m, err := bb.ReadFrom(io.LimitReader(d.r, int64(n)))
		d.off += m
		if err != nil {
			return nil, d.readErr(what, err)
		}
		if m < int64(n) {
			return nil, d.readErr(what, io.ErrUnexpectedEOF)
		}
		buf = bb.Bytes()
	}
	d.crc = crc32.Update(d.crc, d.tab, buf[reserve:])
	return buf, nil
}

// field reads a uvarint length, at most limit, and that many bytes after reserve.
func (d *snapReader) field(what string, limit, reserve int) ([]byte, error) {
	n, err := d.uvarint(what+" length", uint64(limit))
	if err != nil {
		return nil, err
	}
	return d.read(what, int(n), reserve)
}

func (d *snapReader) meta() (snapMeta, error) {
	t, err := d.byte("meta record")
	if err != nil {
		return snapMeta{}, err
	}
	if t != recMeta {
		return snapMeta{}, d.bad("first record has type %#x, not the meta record", t)
	}
	applied, err := d.uvarint("applied index", 1<<64-1)
	if err != nil {
		return snapMeta{}, err
	}
	rev, err := d.uvarint("revision", 1<<63-1)
	if err != nil {
		return snapMeta{}, err
	}
	return snapMeta{applied: applied, revision: int64(rev)}, nil
}

// kv reads a kv record, checks it against the meta record and the key before it, and writes
// it. It returns the key.
func (d *snapReader) kv(meta snapMeta, last []byte, w *restoreWriter) ([]byte, error) {
	key, err := d.field("key", maxKeyBytes, 0)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, d.bad("empty key")
	}
	if last != nil && bytes.Compare(key, last) <= 0 {
		return nil, d.bad("key %q is not after %q", key, last)
	}
	rev, err := d.uvarint("key revision", uint64(meta.revision))
	if err != nil {
		return nil, err
	}
	created, err := d.uvarint("key creation revision", rev)
	if err != nil {
		return nil, err
	}
	if created == 0 {
		return nil, d.bad("key %q created at revision 0", key)
	}
	rec, err := d.field("value", maxValueBytes, recordHeader)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint64(rec, rev)
	binary.BigEndian.PutUint64(rec[8:], created)
	sealRecord(key, rec)
	return key, w.put(bucketKV, key, rec)
}

// member reads a member record, checks it against the one before it, and writes it. It
// returns the member's name.
func (d *snapReader) member(last string, w *restoreWriter) (string, error) {
	raw, err := d.field("member", maxMemberJSON, 0)
	if err != nil {
		return "", err
	}
	m, err := decodeMember(raw)
	if err != nil {
		return "", fmt.Errorf("at byte %d: member record: %w: %w", d.off, ErrBadSnapshot, err)
	}
	switch {
	case m.Name == "":
		return "", d.bad("member without a name")
	case len(m.Name) > maxKeyBytes:
		return "", d.bad("member name of %d bytes exceeds %d", len(m.Name), maxKeyBytes)
	case last != "" && m.Name <= last:
		return "", d.bad("member %q is not after %q", m.Name, last)
	}
	// Stored as this release writes members, so Members reads one shape whatever wrote the
	// snapshot.
	v, err := encodeMember(m)
	if err != nil {
		return "", fmt.Errorf("encode member %q: %w", m.Name, err)
	}
	return m.Name, w.put(bucketMembers, []byte(m.Name), memberRecord(m.Name, v))
}

// crl reads a CRL record, checks it against the one before it, and writes it. It returns
// the record's key.
func (d *snapReader) crl(last string, w *restoreWriter) (string, error) {
	raw, err := d.field("CRL", maxCRLBytes*2, 0)
	if err != nil {
		return "", err
	}
	c, err := decodeCRL(raw)
	if err != nil {
		return "", fmt.Errorf("at byte %d: CRL record: %w: %w", d.off, ErrBadSnapshot, err)
	}
	key := c.key()
	if last != "" && key <= last {
		return "", d.bad("CRL %q is not after %q", key, last)
	}
	// Stored as this release writes CRLs, so CRLs reads one shape whatever wrote the snapshot.
	v, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode CRL %q: %w", key, err)
	}
	return key, w.put(bucketCRLs, []byte(key), crlRecord([]byte(key), v))
}

// end checks the end record against sum, the CRC of everything before it, and that nothing
// follows it.
func (d *snapReader) end(sum uint32) error {
	b, err := d.read("checksum", 4, 0)
	if err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(b); got != sum {
		return d.bad("checksum %08x does not match the content's %08x: the snapshot was damaged in transit or on disk", got, sum)
	}
	if _, err := d.r.ReadByte(); err == nil {
		return d.bad("data after the end record")
	} else if !errors.Is(err, io.EOF) {
		return d.readErr("after the end record", err)
	}
	return nil
}
