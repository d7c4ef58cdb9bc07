package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Every value the store file holds carries a CRC-32C, because bbolt checksums only its meta
// pages: a byte flipped in a data page (bit rot, a torn write into a live page) would
// otherwise be read back as a different revision or value and served, or would move this
// member's revision counter away from the group's for good. Open verifies every record, and
// every read verifies what it reads, so damage is refused with advice instead.
//
//	kv record     revision(8) created(8) crc(4) value; crc of key, the first 16 bytes, value
//	member record crc(4) json;                        crc of name, json
//	crl record    crc(4) json;                        crc of PORT/ISSUER, json (crl.go)
//	meta/sum      crc(4) of applied(8) revision(8), written with them in every commit
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordHeader is the size of a kv record's fixed part: revision, created and checksum.
const recordHeader = 20

func recordSum(key, head, value []byte) uint32 {
	c := crc32.Update(0, castagnoli, key)
	c = crc32.Update(c, castagnoli, head)
	return crc32.Update(c, castagnoli, value)
}

// appendRecord appends the kv record of key (revision, created, value) to b.
func appendRecord(b, key []byte, rev, created int64, value []byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, uint64(rev))
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	b = binary.BigEndian.AppendUint32(b, recordSum(key, b[start:start+16], value))
	return append(b, value...)
}

// sealRecord writes the checksum into a record whose revision, created and value are in
// place, as Restore builds them.
func sealRecord(key, rec []byte) {
	binary.BigEndian.PutUint32(rec[16:], recordSum(key, rec[:16], rec[recordHeader:]))
}

// splitRecord checks the kv record of key and splits it into its parts without copying.
func splitRecord(key, rec []byte) (rev, created int64, value []byte, err error) {
	if len(rec) < recordHeader {
		return 0, 0, nil, fmt.Errorf("record of %d bytes: %w", len(rec), errDamaged)
	}
	value = rec[recordHeader:]
	if binary.BigEndian.Uint32(rec[16:]) != recordSum(key, rec[:16], value) {
		return 0, 0, nil, fmt.Errorf("record checksum mismatch: %w", errDamaged)
	}
	return int64(binary.BigEndian.Uint64(rec)), int64(binary.BigEndian.Uint64(rec[8:])), value, nil
}

// memberRecord is the stored form of a member's JSON.
func memberRecord(name string, js []byte) []byte {
	c := crc32.Update(crc32.Update(0, castagnoli, []byte(name)), castagnoli, js)
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(js)), c), js...)
}

// memberJSON checks a member record and returns its JSON, without copying.
func memberJSON(name, rec []byte) ([]byte, error) {
	if len(rec) < 4 {
		return nil, fmt.Errorf("member %q: record of %d bytes: %w", name, len(rec), errDamaged)
	}
	js := rec[4:]
	if binary.BigEndian.Uint32(rec) != crc32.Update(crc32.Update(0, castagnoli, name), castagnoli, js) {
		return nil, fmt.Errorf("member %q: record checksum mismatch: %w", name, errDamaged)
	}
	return js, nil
}

// metaSum is meta/sum for an applied index and revision.
func metaSum(applied uint64, revision int64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), applied)
	b = binary.BigEndian.AppendUint64(b, uint64(revision))
	return binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, castagnoli))
}

// verifyRecords reads every kv and member record of the file and checks its checksum, and
// that keys come in order, so that damage anywhere in the data is found before the member
// serves it.
func verifyRecords(tx *bolt.Tx) error {
	var last []byte
	c := tx.Bucket([]byte(bucketKV)).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if last != nil && bytes.Compare(k, last) <= 0 {
			return fmt.Errorf("key %q after %q: keys out of order: %w", k, last, errDamaged)
		}
		last = k
		if _, _, _, err := splitRecord(k, v); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
	}
	err := tx.Bucket([]byte(bucketMembers)).ForEach(func(k, v []byte) error {
		_, err := memberJSON(k, v)
		return err
	})
	if err != nil {
		return err
	}
	err = tx.Bucket([]byte(bucketCRLs)).ForEach(func(k, v []byte) error {
		_, err := crlFromRecord(k, v)
		return err
	})
	if err != nil {
		return err
	}
	return verifyLeaseRecords(tx)
}
