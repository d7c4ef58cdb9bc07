package store

import (
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/big"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mirrorkv/mirrorkv/pki"
)

// maxCRLBytes bounds the CRL of a set-crl command: a CRL listing tens of thousands of
// certificates still fits, and a raft entry stays small enough to replicate at once.
const maxCRLBytes = 1 << 20

// CRL is a certificate revocation list pushed to the group, as the store records it: in the
// crls bucket (one record per port and issuing CA, keyed PORT/ISSUER) and in snapshots. Like
// Member it is the store's own type; its fields and JSON names are part of those formats
// (docs/storage.md), and TestSchema_CRLRecord decodes a record written by an earlier release.
type CRL struct {
	Port   string `json:"port"`   // CRLPortMember or CRLPortClient: whose CA bundle signs it
	Issuer string `json:"issuer"` // pki.CRLIssuerID of the CA that signed it
	Number string `json:"number"` // its CRL number, decimal
	DER    []byte `json:"der"`    // the CRL as its CA signed it
}

func (c CRL) key() string { return c.Port + "/" + c.Issuer }

// applyCRL records the CRL der for port unless the group already holds a newer one of the
// same CA. The store does not check the signature: the CA bundles are each member's own
// configuration, not replicated state, so the primary checks it before the command is
// committed and every member again before it uses the CRL. The order of CRL numbers, though,
// is decided here, the same way on every member: a restarting member reads the CRL from this
// record, and an older one committed after a newer one (two pushes racing) must not win.
func (b *batch) applyCRL(port string, der []byte) Result {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return Result{Revision: b.rev, Err: fmt.Errorf("set CRL for the %s port: %w: %w", port, ErrBadCommand, err)}
	}
	crl := CRL{Port: port, Issuer: pki.CRLIssuerID(rl), Number: pki.CRLNumber(rl).String(), DER: der}
	key := []byte(crl.key())
	if old := b.crls.Get(key); old != nil {
		cur, err := crlFromRecord(key, old)
		if err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("set CRL for the %s port: %w", port, err)}
		}
		n, _ := new(big.Int).SetString(cur.Number, 10) // checked by crlFromRecord
		if err := pki.CheckCRLNumber(rl, n); err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("set CRL for the %s port: %w", port, err)}
		}
	}
	js, err := json.Marshal(crl)
	if err == nil {
		err = b.crls.Put(key, crlRecord(key, js))
	}
	if err != nil {
		return Result{Revision: b.rev, Err: fmt.Errorf("set CRL for the %s port: %w", port, err)}
	}
	b.crlChanged = true
	return Result{Revision: b.rev}
}

// crlRecord is the stored form of a CRL's JSON: crc(4) json, the CRC-32C of key and json.
func crlRecord(key, js []byte) []byte {
	c := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, js)
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(js)), c), js...)
}

// crlFromRecord checks a CRL record and decodes it; the result does not alias rec.
func crlFromRecord(key, rec []byte) (CRL, error) {
	if len(rec) < 4 {
		return CRL{}, fmt.Errorf("CRL %q: record of %d bytes: %w", key, len(rec), errDamaged)
	}
	js := rec[4:]
	if binary.BigEndian.Uint32(rec) != crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, js) {
		return CRL{}, fmt.Errorf("CRL %q: record checksum mismatch: %w", key, errDamaged)
	}
	c, err := decodeCRL(js)
	if err != nil {
		return CRL{}, fmt.Errorf("CRL %q: %w: %w", key, errDamaged, err)
	}
	if c.key() != string(key) {
		return CRL{}, fmt.Errorf("CRL %q holds %q: %w", key, c.key(), errDamaged)
	}
	return c, nil
}

// decodeCRL reads the JSON of a CRL record. Fields it does not know are ignored, so a record
// from a newer release that only adds fields still reads.
func decodeCRL(js []byte) (CRL, error) {
	var c CRL
	if err := json.Unmarshal(js, &c); err != nil {
		return CRL{}, err
	}
	if c.Port != CRLPortMember && c.Port != CRLPortClient {
		return CRL{}, fmt.Errorf("CRL for port %q: want %s or %s", c.Port, CRLPortMember, CRLPortClient)
	}
	if c.Issuer == "" || len(c.DER) == 0 {
		return CRL{}, fmt.Errorf("CRL for the %s port without an issuer or a body", c.Port)
	}
	if n, ok := new(big.Int).SetString(c.Number, 10); !ok || n.Sign() < 0 {
		return CRL{}, fmt.Errorf("CRL for the %s port numbered %q: want a decimal number", c.Port, c.Number)
	}
	return c, nil
}

// CRLs returns the CRLs pushed to the group, one per port and issuing CA, sorted by port
// and issuer. Options.OnCRL says when they change.
func (s *Store) CRLs() ([]CRL, error) {
	var mem map[string][]byte
	out := []CRL{}
	add := func(key string, rec []byte) error {
		c, err := crlFromRecord([]byte(key), rec)
		if err == nil {
			out = append(out, c)
		}
		return err
	}
	err := s.viewWithMemory(func() { mem = s.pendingTable(bucketCRLs) }, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketCRLs)).ForEach(func(k, v []byte) error {
			if _, ok := mem[string(k)]; ok {
				return nil
			}
			return add(string(k), v)
		})
	})
	for key, v := range mem {
		if err == nil && v != nil {
			err = add(key, v)
		}
	}
	if err != nil {
		return nil, s.readErr(fmt.Errorf("list CRLs: %w", err))
	}
	slices.SortFunc(out, func(a, b CRL) int { return strings.Compare(a.key(), b.key()) })
	return out, nil
}

// notifyCRL tells Options.OnCRL that the CRLs changed.
func (s *Store) notifyCRL() {
	if s.onCRL != nil {
		s.onCRL()
	}
}
