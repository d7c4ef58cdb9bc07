package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// txnLimits are the bounds parseTxn enforces.
type txnLimits struct {
	ops       int   // compares, and writes of each branch
	keyBytes  int   // longest key
	valueByte int64 // largest value of a put or a compare
}

func (s *Server) txnLimits() txnLimits {
	return txnLimits{ops: s.cfg.MaxTxnOps, keyBytes: s.cfg.MaxKeyBytes, valueByte: s.cfg.MaxValueBytes}
}

// txn serves POST /v1/txn: the body is parsed and checked here, so that what reaches the
// group is a transaction the store accepts; the store evaluates the compares.
func (s *Server) txn(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readTxnBody(w, r)
	if err != nil {
		return err
	}
	t, err := parseTxn(body, s.txnLimits())
	if err != nil {
		return err
	}
	res, err := s.grp.Apply(r.Context(), store.Command{Op: store.OpTxn, Txn: t})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return leaseError(err)
	}
	if res.Txn == nil {
		return fmt.Errorf("apply txn: the group returned no txn result")
	}
	setHeaders(w.Header(), 0, res.Revision, -1)
	s.writeJSON(w, http.StatusOK, txnAnswer(t, res))
	return nil
}

// readTxnBody reads at most MaxTxnBytes, growing as the bytes arrive.
func (s *Server) readTxnBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.cfg.MaxTxnBytes
	if r.ContentLength > limit {
		return nil, txnTooLarge(limit, nil)
	}
	body, err := io.ReadAll(limitBody(w, r, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, txnTooLarge(limit, err)
		}
		return nil, bodyError(err)
	}
	return body, nil
}

func txnTooLarge(limit int64, err error) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Reason: reason.TxnTooLarge, Err: err,
		Msg: fmt.Sprintf("transaction body larger than %d bytes", limit)}
}

func badTxn(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: reason.BadTxn, Msg: fmt.Sprintf(format, a...)}
}

// parseTxn decodes a POST /v1/txn body (wire.Txn) into the store's transaction. It refuses
// what the store would refuse (empty or long keys, a key written twice in a branch) so that
// the client hears why with a 400 rather than a refused command.
func parseTxn(body []byte, lim txnLimits) (*store.Txn, error) {
	var wt wire.Txn
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wt); err != nil {
		e := badTxn("transaction body is not valid JSON: %s", jsonProblem(err))
		e.Err = err
		return nil, e
	}
	if dec.More() {
		return nil, badTxn("transaction body has data after its JSON object")
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"compare", len(wt.Compare)}, {"then", len(wt.Then)}, {"else", len(wt.Else)}} {
		if l.n > lim.ops {
			return nil, &Error{Status: http.StatusBadRequest, Reason: reason.TxnTooManyOps,
				Msg: fmt.Sprintf("%d entries in %q, more than the limit of %d", l.n, l.name, lim.ops)}
		}
	}
	t := &store.Txn{}
	for i, c := range wt.Compare {
		sc, err := parseCompare(c, lim)
		if err != nil {
			return nil, badTxn("compare %d: %s", i, err)
		}
		t.Compares = append(t.Compares, sc)
	}
	var err error
	if t.Then, err = parseOps("then", wt.Then, lim); err != nil {
		return nil, err
	}
	if t.Else, err = parseOps("else", wt.Else, lim); err != nil {
		return nil, err
	}
	return t, nil
}

// jsonProblem says where the JSON went wrong without echoing the client's bytes.
func jsonProblem(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %q wants %s", te.Field, te.Type)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the body ends early"
	}
	return err.Error()
}

var compareOps = map[string]store.Cmp{"": store.CmpEqual, "=": store.CmpEqual,
	"!=": store.CmpNotEqual, "<": store.CmpLess, ">": store.CmpGreater}

func parseCompare(c wire.Compare, lim txnLimits) (store.Compare, error) {
	if err := checkTxnKey(c.Key, lim); err != nil {
		return store.Compare{}, err
	}
	cmp, ok := compareOps[c.Op]
	if !ok {
		return store.Compare{}, fmt.Errorf("op %q: want =, !=, < or >", c.Op)
	}
	value, err := txnValue(c.Value, c.ValueBase64, lim)
	if err != nil {
		return store.Compare{}, err
	}
	out := store.Compare{Key: c.Key, Cmp: cmp}
	switch c.Target {
	case wire.TargetRevision:
		if c.Revision < 0 {
			return store.Compare{}, fmt.Errorf("revision %d is negative", c.Revision)
		}
		out.Target, out.Revision = store.TargetRevision, c.Revision
	case wire.TargetValue:
		out.Target, out.Value = store.TargetValue, value
	case wire.TargetExists, wire.TargetAbsent:
		if c.Op != "" {
			return store.Compare{}, fmt.Errorf("target %q takes no op", c.Target)
		}
		out.Target = store.TargetExists
		if c.Target == wire.TargetAbsent {
			out.Cmp = store.CmpNotEqual
		}
	default:
		return store.Compare{}, fmt.Errorf("target %q: want revision, value, exists or absent", c.Target)
	}
	if out.Target != store.TargetValue && value != nil {
		return store.Compare{}, fmt.Errorf("target %q takes no value", c.Target)
	}
	if out.Target != store.TargetRevision && c.Revision != 0 {
		return store.Compare{}, fmt.Errorf("target %q takes no revision", c.Target)
	}
	if out.Target == store.TargetValue && cmp != store.CmpEqual && cmp != store.CmpNotEqual {
		return store.Compare{}, fmt.Errorf("op %q on a value: want = or !=", c.Op)
	}
	return out, nil
}

func parseOps(branch string, ops []wire.TxnOp, lim txnLimits) ([]store.TxnOp, error) {
	var out []store.TxnOp
	seen := make(map[string]bool, len(ops))
	for i, o := range ops {
		if err := checkTxnKey(o.Key, lim); err != nil {
			return nil, badTxn("%s %d: %s", branch, i, err)
		}
		if seen[o.Key] {
			return nil, badTxn("%s writes key %q twice; a branch writes each key once", branch, o.Key)
		}
		seen[o.Key] = true
		value, err := txnValue(o.Value, o.ValueBase64, lim)
		if err != nil {
			return nil, badTxn("%s %d: %s", branch, i, err)
		}
		if o.Lease < 0 {
			return nil, badTxn("%s %d: lease %d is not a lease ID", branch, i, o.Lease)
		}
		switch o.Op {
		case wire.OpPut:
			out = append(out, store.TxnOp{Op: store.OpPut, Key: o.Key, Value: value, Lease: o.Lease})
		case wire.OpDelete:
			if value != nil || o.Lease != 0 {
				return nil, badTxn("%s %d: a delete takes no value and no lease", branch, i)
			}
			out = append(out, store.TxnOp{Op: store.OpDelete, Key: o.Key})
		default:
			return nil, badTxn("%s %d: op %q: want put or delete", branch, i, o.Op)
		}
	}
	return out, nil
}

func checkTxnKey(key string, lim txnLimits) error {
	if err := validateKey(key, lim.keyBytes); err != nil {
		return fmt.Errorf("key %q: %s", key, toError(err).Msg)
	}
	return nil
}

// txnValue is the value given as text or as base64, nil when neither is.
func txnValue(text string, b64 []byte, lim txnLimits) ([]byte, error) {
	if text != "" && len(b64) > 0 {
		return nil, fmt.Errorf("both value and value_base64: give one")
	}
	v := b64
	if text != "" {
		v = []byte(text)
	}
	if int64(len(v)) > lim.valueByte {
		return nil, fmt.Errorf("value of %d bytes, more than the limit of %d", len(v), lim.valueByte)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// txnAnswer is what the client is told of res, the result of t.
func txnAnswer(t *store.Txn, res store.Result) *wire.TxnResult {
	ops := t.Then
	if !res.Txn.Succeeded {
		ops = t.Else
	}
	out := &wire.TxnResult{Succeeded: res.Txn.Succeeded, Revision: res.Revision, Results: make([]wire.OpResult, len(ops))}
	for i, o := range ops {
		r := wire.OpResult{Op: wire.OpPut, Key: o.Key}
		if i < len(res.Txn.Ops) {
			r.Revision = res.Txn.Ops[i].Revision
		}
		if o.Op == store.OpDelete {
			r.Op, r.Deleted = wire.OpDelete, r.Revision != 0
		}
		out.Results[i] = r
	}
	return out
}
