package pki

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"time"
)

// index is the CA's record of what it issued and revoked, kept in DIR/index.json, the
// counterpart of openssl's index.txt, serial and crlnumber files.
type index struct {
	CRLNumber int64    `json:"crl_number"` // number of the last CRL written
	Certs     []record `json:"certificates"`
}

// record is one issued certificate.
type record struct {
	Serial  string `json:"serial"` // lower-case hex, as 'openssl x509 -serial' prints it
	Subject string `json:"subject"`
	// Kind is "member" or "client:ACCESS". Its key keeps its first name, so that the CA
	// directories written before certificate kinds and access levels had names of their
	// own read unchanged.
	Kind      string     `json:"role"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    int        `json:"reason,omitempty"`
}

func (idx *index) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode CA index: %w", err)
	}
	return append(b, '\n'), nil
}

func (ca *CA) loadIndex() (*index, error) {
	b, err := os.ReadFile(ca.path(IndexFile))
	if err != nil {
		return nil, fmt.Errorf("read CA index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("read CA index %s (restore it from a backup): %w", ca.path(IndexFile), err)
	}
	return &idx, nil
}

func (ca *CA) saveIndex(idx *index) error {
	b, err := idx.marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(ca.path(IndexFile), b, modeSecret)
}

// find returns the record of serial, or nil.
func (idx *index) find(serial *big.Int) *record {
	s := serialHex(serial)
	for i := range idx.Certs {
		if idx.Certs[i].Serial == s {
			return &idx.Certs[i]
		}
	}
	return nil
}

// validFor returns a certificate of subject that is neither expired nor revoked at now.
func (idx *index) validFor(subject string, now time.Time) *record {
	for i, r := range idx.Certs {
		if r.Subject == subject && r.RevokedAt == nil && now.Before(r.NotAfter) {
			return &idx.Certs[i]
		}
	}
	return nil
}

// serialHex formats a serial number the way mirrorkv prints and reads it.
func serialHex(n *big.Int) string { return n.Text(16) }

// ParseSerial reads a serial number in hex, as 'mirrorkv cert inspect' and
// 'openssl x509 -serial' print it; colons and a 0x prefix are allowed.
func ParseSerial(s string) (*big.Int, error) {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			clean = append(clean, s[i])
		}
	}
	t := string(clean)
	if len(t) > 2 && (t[:2] == "0x" || t[:2] == "0X") {
		t = t[2:]
	}
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || n.Sign() <= 0 || len(t) > 40 {
		return nil, fmt.Errorf("serial %q: give it in hex, as 'mirrorkv cert inspect' prints it", s)
	}
	return n, nil
}
