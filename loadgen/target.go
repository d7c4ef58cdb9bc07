package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Target runs one operation against the system under test. It is called from many
// goroutines at once and must reuse its connections: a target that dials per operation
// measures handshakes, not the system.
type Target interface {
	Do(ctx context.Context, op Op) error
}

// TargetFunc adapts a function to Target.
type TargetFunc func(ctx context.Context, op Op) error

// Do calls f.
func (f TargetFunc) Do(ctx context.Context, op Op) error { return f(ctx, op) }

// ClientTarget drives a mirrorkv group (or anything that speaks its HTTP API, such as
// NopHandler) through the Go client: writes are PUTs, reads GETs, stale reads GETs with
// ?stale=true. One client is shared by every worker; its transport keeps a pool of
// HTTP/1.1 connections, one per concurrent request.
type ClientTarget struct {
	Client *client.Client
}

// Do runs op.
func (t ClientTarget) Do(ctx context.Context, op Op) error {
	var err error
	switch op.Kind {
	case Write:
		_, err = t.Client.Put(ctx, op.Key, op.Value)
	case Read:
		_, _, err = t.Client.Get(ctx, op.Key)
	case StaleRead:
		_, _, err = t.Client.Get(ctx, op.Key, client.Stale())
	case Txn:
		var res client.TxnResult
		txn := client.Txn{
			Compare: []wire.Compare{{Key: op.Key, Target: wire.TargetExists}},
			Then:    []wire.TxnOp{{Op: wire.OpPut, Key: op.Key, ValueBase64: op.Value}},
		}
		if op.Key2 != "" {
			txn.Then = append(txn.Then, wire.TxnOp{Op: wire.OpPut, Key: op.Key2, ValueBase64: op.Value})
		}
		res, err = t.Client.Txn(ctx, txn)
		if err == nil && !res.Succeeded {
			err = fmt.Errorf("txn on %s and %s: its compare failed, though every key was written first", op.Key, op.Key2)
		}
	}
	return err
}

// NopHandler answers the kv routes as a member would, without storing anything: PUT reads
// the body and answers 200 with an ETag, GET answers 200 with valueSize bytes, POST (a
// transaction) reads the body and answers that it succeeded, DELETE 204.
// Served behind the same mutual TLS as a member's client port, it is the ceiling of a
// benchmark: what the client, the generator and TLS on this machine can do with a server
// that does no work.
func NopHandler(valueSize int) http.Handler {
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = 'v'
	}
	length := strconv.Itoa(valueSize)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Etag"] = etagOne
		switch r.Method {
		case http.MethodPut:
			_, _ = io.Copy(io.Discard, r.Body)
			h["Content-Length"] = zero
			w.WriteHeader(http.StatusOK)
		case http.MethodGet:
			h["Content-Type"] = octetStream
			h["Content-Length"] = []string{length}
			_, _ = w.Write(value)
		case http.MethodPost:
			_, _ = io.Copy(io.Discard, r.Body)
			h["Content-Type"] = applicationJSON
			_, _ = w.Write(txnSucceeded)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

var (
	etagOne     = []string{`"1"`}
	zero        = []string{"0"}
	octetStream = []string{"application/octet-stream"}

	applicationJSON = []string{"application/json"}
	txnSucceeded    = []byte(`{"succeeded":true,"revision":1,"results":[{"op":"put","key":"k","revision":1},{"op":"put","key":"k","revision":1}]}`)
)
