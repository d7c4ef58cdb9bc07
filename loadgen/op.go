package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// OpKind is what one operation does.
type OpKind uint8

// Operation kinds.
const (
	Write     OpKind = iota // put a value
	Read                    // linearizable read
	StaleRead               // read of the answering member's own copy
	Txn                     // a transaction: if Key exists, put Key and Key2
	numOpKinds
)

var opNames = [numOpKinds]string{Write: "write", Read: "read", StaleRead: "stale-read", Txn: "txn"}

func (k OpKind) String() string {
	if k < numOpKinds {
		return opNames[k]
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// Op is one operation for a Target. Value is shared between operations and workers: a
// target must not modify it.
type Op struct {
	Kind  OpKind
	Key   string
	Key2  string // for Txn: the second key it writes, never Key; empty with a single key
	Value []byte // for Write and Txn
}

// Mix is the share of each kind of operation; the shares add up to 1.
type Mix struct {
	Write, Read, StaleRead, Txn float64
}

// Mixes by name.
var (
	WriteOnly     = Mix{Write: 1}
	ReadOnly      = Mix{Read: 1}
	StaleReadOnly = Mix{StaleRead: 1}
	TxnOnly       = Mix{Txn: 1}
)

// ParseMix reads a mix as the bench command takes it: write, read, stale-read, txn, or
// mixed:R, where R is the percentage of linearizable reads (0-100) and the rest are writes.
func ParseMix(s string) (Mix, error) {
	switch s {
	case "write":
		return WriteOnly, nil
	case "read":
		return ReadOnly, nil
	case "stale-read":
		return StaleReadOnly, nil
	case "txn":
		return TxnOnly, nil
	}
	pct, ok := strings.CutPrefix(s, "mixed:")
	if !ok {
		return Mix{}, fmt.Errorf("mix %q: want write, read, stale-read, txn or mixed:R (R: percent reads, e.g. mixed:90)", s)
	}
	r, err := strconv.ParseFloat(pct, 64)
	if err != nil || r < 0 || r > 100 {
		return Mix{}, fmt.Errorf("mix %q: want mixed:R with R a read percentage from 0 to 100", s)
	}
	return Mix{Read: r / 100, Write: (100 - r) / 100}, nil
}

// String is the mix in ParseMix's syntax.
func (m Mix) String() string {
	switch m {
	case WriteOnly:
		return "write"
	case ReadOnly:
		return "read"
	case StaleReadOnly:
		return "stale-read"
	case TxnOnly:
		return "txn"
	}
	if m.StaleRead == 0 && m.Txn == 0 {
		return "mixed:" + strconv.FormatFloat(m.Read*100, 'g', -1, 64)
	}
	return fmt.Sprintf("write=%g,read=%g,stale-read=%g,txn=%g", m.Write, m.Read, m.StaleRead, m.Txn)
}

// validate checks that the shares are non-negative and add up to 1.
func (m Mix) validate() error {
	if m.Write < 0 || m.Read < 0 || m.StaleRead < 0 || m.Txn < 0 {
		return fmt.Errorf("mix %s: a share is negative", m)
	}
	if sum := m.Write + m.Read + m.StaleRead + m.Txn; sum < 0.999999 || sum > 1.000001 {
		return fmt.Errorf("mix %s: the shares add up to %g, want 1", m, sum)
	}
	return nil
}

// Reads reports whether the mix reads at all, so that the keys must be written first; a
// transaction reads its key in its compare.
func (m Mix) Reads() bool { return m.Read > 0 || m.StaleRead > 0 || m.Txn > 0 }

// pick maps a uniform number in [0, 1) to a kind.
func (m Mix) pick(u float64) OpKind {
	switch {
	case u < m.Write:
		return Write
	case u < m.Write+m.Read:
		return Read
	case u < m.Write+m.Read+m.Txn:
		return Txn
	case m.StaleRead > 0:
		return StaleRead
	case m.Read > 0:
		return Read
	}
	return Write
}
