package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// The snapshot stream, written by Snapshot and read by Restore. It is mirrorkv's own format
// rather than the bbolt file, so that it can be checked record by record as it arrives from
// another member, and so that Restore never maps a file it has not checked:
//
//	magic  "MKVSNAP1"
//	meta   'M' applied(uvarint) revision(uvarint)
//	kv*    'K' key(uvarint len, bytes) revision(uvarint) created(uvarint) value(uvarint len, bytes)
//	member 'P' json(uvarint len, bytes)                                   (zero or more)
//	crl    'R' json(uvarint len, bytes)                                   (zero or more)
//	lease  'T' id ttl touched count(uvarint each) key(uvarint len, bytes)* (zero or more)
//	end    'E' CRC-32C (Castagnoli) of every byte before the 'E', 4 bytes big-endian
//
// Keys come in strictly increasing byte order, members in strictly increasing name order and
// CRLs in strictly increasing PORT/ISSUER order, which is how bbolt iterates them and what
// Restore checks; leases come in strictly increasing ID order, each with its keys in strictly
// increasing order, and no key in two leases. Every uvarint is minimal, so the encoding of a
// state is unique. A stream without CRL records (written before they existed) reads as a
// group without pushed CRLs, and one without lease records as a group without leases: the
// magic stays MKVSNAP1 because every older stream still reads the same. A release from
// before leases refuses a stream with lease records (unknown record type) instead of
// dropping them.
const snapshotMagic = "MKVSNAP1"

// Record types of the snapshot stream.
const (
	recMeta   = 'M'
	recKV     = 'K'
	recMember = 'P'
	recCRL    = 'R'
	recLease  = 'T'
	recEnd    = 'E'
)

// maxMemberJSON bounds a member record; a real one is a few hundred bytes.
const maxMemberJSON = 64 << 10

// Snapshot returns a consistent point-in-time copy of the store. It holds a bbolt read
// transaction until Release, which is what makes it consistent while ApplyBatch goes on;
// Close and Restore wait for it to be released. Under write-behind it first commits
// everything applied, and fails if the disk refuses that: a snapshot must cover AppliedIndex,
// and its caller may then drop the log entries the file would otherwise still need.
func (s *Store) Snapshot() (Snapshot, error) {
	if s.flushKick != nil {
		s.flushMu.Lock()
		defer s.flushMu.Unlock()
		s.writeMu.Lock() // nothing new is applied until the transaction has begun
		defer s.writeMu.Unlock()
		if err := s.flushHeld(); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, fmt.Errorf("snapshot: %w", ErrClosed)
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("snapshot: begin read transaction: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

type snapshot struct {
	mu sync.Mutex // serialises WriteTo and Release
	tx *bolt.Tx   // nil once released
}

// Release ends the read transaction. It may be called more than once.
func (sn *snapshot) Release() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx != nil {
		_ = sn.tx.Rollback() // a read transaction has nothing to roll back
		sn.tx = nil
	}
}

// WriteTo streams the snapshot to w and returns the number of bytes written.
func (sn *snapshot) WriteTo(w io.Writer) (int64, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx == nil {
		return 0, errors.New("write snapshot: already released; take a new one")
	}
	cw := &countWriter{w: w}
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crc), 64<<10)
	if err := writeRecords(sn.tx, bw); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := cw.Write(binary.BigEndian.AppendUint32([]byte{recEnd}, crc.Sum32())); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	return cw.n, nil
}

// writeRecords writes everything before the end record.
func writeRecords(tx *bolt.Tx, bw *bufio.Writer) error {
	applied, revision, err := readMeta(tx)
	if err != nil {
		return err
	}
	rec := make([]byte, 0, 64)
	rec = append(rec, snapshotMagic...)
	rec = append(rec, recMeta)
	rec = binary.AppendUvarint(rec, applied)
	rec = binary.AppendUvarint(rec, uint64(revision))
	if _, err := bw.Write(rec); err != nil {
		return err
	}
	err = tx.Bucket([]byte(bucketKV)).ForEach(func(k, v []byte) error {
		rev, created, value, err := splitRecord(k, v)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		rec = append(rec[:0], recKV)
		rec = appendField(rec, k)
		rec = binary.AppendUvarint(rec, uint64(rev))
		rec = binary.AppendUvarint(rec, uint64(created))
		rec = binary.AppendUvarint(rec, uint64(len(value)))
		if _, err := bw.Write(rec); err != nil {
			return err
		}
		_, err = bw.Write(value)
		return err
	})
	if err != nil {
		return err
	}
	err = tx.Bucket([]byte(bucketMembers)).ForEach(func(k, v []byte) error {
		js, err := memberJSON(k, v)
		if err != nil {
			return err
		}
		rec = append(rec[:0], recMember)
		rec = appendField(rec, js)
		_, err = bw.Write(rec)
		return err
	})
	if err != nil {
		return err
	}
	err = tx.Bucket([]byte(bucketCRLs)).ForEach(func(k, v []byte) error {
		if _, err := crlFromRecord(k, v); err != nil {
			return err
		}
		rec = append(rec[:0], recCRL)
		rec = appendField(rec, v[4:])
		_, err := bw.Write(rec)
		return err
	})
	if err != nil {
		return err
	}
	return writeLeaseRecords(tx, bw)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
