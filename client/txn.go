package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mirrorkv/mirrorkv/wire"
)

// Txn is a transaction for Client.Txn: when every compare holds, the writes of Then are
// applied, otherwise those of Else, atomically and at one new revision.
type Txn = wire.Txn

// TxnResult is what a transaction did: which branch ran, and a result per write.
type TxnResult = wire.TxnResult

// Txn applies t on the primary (any member forwards it) and reports which branch ran. Like
// a put, it is sent once more only when the connection was never made; on an error for
// which IsOutcomeUnknown reports true, read the keys back before retrying. Needs readwrite.
func (c *Client) Txn(ctx context.Context, t Txn) (TxnResult, error) {
	var res TxnResult
	body, err := json.Marshal(t)
	if err != nil {
		return res, fmt.Errorf("encode txn: %w", err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/txn", body: body, header: jsonHeader()})
	if err != nil {
		return res, fmt.Errorf("txn: %w", err)
	}
	return res, decode(resp, &res)
}

// CompareRevision holds when key's revision (0: the key does not exist) relates to rev as
// op says: "=", "!=", "<" or ">".
func CompareRevision(key, op string, rev int64) wire.Compare {
	return wire.Compare{Key: key, Target: wire.TargetRevision, Op: op, Revision: rev}
}

// CompareValue holds when key exists and its value is value.
func CompareValue(key string, value []byte) wire.Compare {
	return wire.Compare{Key: key, Target: wire.TargetValue, ValueBase64: value}
}

// KeyExists holds when key exists.
func KeyExists(key string) wire.Compare { return wire.Compare{Key: key, Target: wire.TargetExists} }

// KeyAbsent holds when key does not exist.
func KeyAbsent(key string) wire.Compare { return wire.Compare{Key: key, Target: wire.TargetAbsent} }

// TxnPut is a write of a transaction that sets key to value.
func TxnPut(key string, value []byte) wire.TxnOp {
	return wire.TxnOp{Op: wire.OpPut, Key: key, ValueBase64: value}
}

// TxnPutWithLease is a write of a transaction that sets key to value and attaches it to
// lease id; the transaction fails with lease-not-found if the lease does not exist.
func TxnPutWithLease(key string, value []byte, id int64) wire.TxnOp {
	return wire.TxnOp{Op: wire.OpPut, Key: key, ValueBase64: value, Lease: id}
}

// TxnDelete is a write of a transaction that removes key.
func TxnDelete(key string) wire.TxnOp { return wire.TxnOp{Op: wire.OpDelete, Key: key} }
