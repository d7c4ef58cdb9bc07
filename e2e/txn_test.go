package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/history"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// The bank: accounts whose balances transactions move between, each conditioned on the
// revisions of both accounts as last read. Money is neither made nor lost, so every
// snapshot read sums to the same total.
const (
	bankAccounts = 4
	bankOpening  = 100
	bankTotal    = bankAccounts * bankOpening
	bankWorkers  = 4
	bankPrefix   = "bank/"
)

func bankKey(i int) string { return bankPrefix + strconv.Itoa(i) }

// bank is the workload of TestTxn_Bank: its clients and the history they record.
type bank struct {
	t       *testing.T
	clients []*client.Client
	rec     *history.TxnRecorder

	mu       sync.Mutex
	badTotal []string // reads whose balances did not sum to bankTotal
	refusedN int      // transactions refused outright, recorded as unknown
	unknownN int
	applied  int
	conflict int // transactions whose compares failed
}

// TestTxn_Bank runs compare-and-swap transfers from concurrent clients on a 3-member group
// while the primary is killed with SIGKILL and restarted. The history of transfers and
// snapshot reads must be linearizable with the multi-key model, every read must see the
// same total, and no two transfers conditioned on the same revision of a key may both apply.
func TestTxn_Bank(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	b := &bank{t: t, rec: history.NewTxnRecorder()}
	for i := range bankWorkers {
		order := append([]*localgroup.Member{g.Members[i%len(g.Members)]}, others(g, g.Members[i%len(g.Members)])...)
		eps := make([]string, len(order))
		for j, m := range order {
			eps[j] = m.ClientURL
		}
		c, err := client.New(client.Config{Endpoints: eps, TLS: tlsCfg, Timeout: opTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		b.clients = append(b.clients, c)
	}
	start, err := b.clients[0].List(t.Context(), bankPrefix, "", 0)
	if err != nil || len(start.KVs) != 0 {
		t.Fatalf("list %s before the bank opens = %+v, %v", bankPrefix, start, err)
	}
	b.open()

	ctx, cancel := context.WithTimeout(t.Context(), 14*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for id := range bankWorkers {
		wg.Go(func() { b.run(ctx, id, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(id)))) })
	}
	time.Sleep(3 * time.Second)
	old := primaryOf(t, g)
	t.Logf("kill -9 the primary %s", old.Name)
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	next := primaryOf(t, g)
	t.Logf("%s took over", next.Name)
	time.Sleep(2 * time.Second)
	if err := g.Restart(old); err != nil {
		t.Fatalf("restart %s: %v", old.Name, err)
	}
	wg.Wait()
	b.read(t.Context(), 0) // a last read, after the restart
	if t.Failed() {
		return
	}
	b.verify(start.Revision)
}

// open creates the accounts in one transaction, recorded like the transfers.
func (b *bank) open() {
	t := &store.Txn{}
	for i := range bankAccounts {
		t.Compares = append(t.Compares, store.Compare{Key: bankKey(i), Target: store.TargetExists, Cmp: store.CmpNotEqual})
		t.Then = append(t.Then, store.TxnOp{Op: store.OpPut, Key: bankKey(i), Value: []byte(strconv.Itoa(bankOpening))})
	}
	p := b.rec.Begin(0, t)
	res, err := b.clients[0].Txn(b.t.Context(), wireTxn(t))
	if err != nil || !res.Succeeded {
		b.t.Fatalf("open the bank: %+v, %v", res, err)
	}
	p.End(history.TxnOutput{Succeeded: true, Revision: res.Revision})
}

// run alternates snapshot reads and transfers until ctx ends.
func (b *bank) run(ctx context.Context, id int, rng *rand.Rand) {
	for ctx.Err() == nil {
		snap, ok := b.read(ctx, id)
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		from, to := rng.IntN(bankAccounts), rng.IntN(bankAccounts-1)
		if to >= from {
			to++
		}
		b.transfer(ctx, id, snap, bankKey(from), bankKey(to), rng)
	}
}

// read lists the accounts: one listing is one snapshot of the store.
func (b *bank) read(ctx context.Context, id int) (map[string]history.KeyState, bool) {
	p := b.rec.Begin(id, nil)
	l, err := b.clients[id].List(ctx, bankPrefix, "", 0)
	if err != nil {
		p.End(history.TxnOutput{Unknown: true})
		return nil, false
	}
	snap := map[string]history.KeyState{}
	total := 0
	for _, kv := range l.KVs {
		snap[kv.Key] = history.KeyState{Value: string(kv.Value), Revision: kv.Revision}
		n, err := strconv.Atoi(string(kv.Value))
		if err != nil {
			b.t.Errorf("account %s holds %q", kv.Key, kv.Value)
		}
		total += n
	}
	p.End(history.TxnOutput{Read: snap})
	if total != bankTotal || len(l.KVs) != bankAccounts {
		b.mu.Lock()
		b.badTotal = append(b.badTotal, fmt.Sprintf("client %d at revision %d: %d accounts, total %d", id, l.Revision, len(l.KVs), total))
		b.mu.Unlock()
	}
	return snap, true
}

// transfer moves a random part of from's balance to to, if neither changed since snap.
func (b *bank) transfer(ctx context.Context, id int, snap map[string]history.KeyState, from, to string, rng *rand.Rand) {
	f, okf := snap[from]
	d, okd := snap[to]
	if !okf || !okd {
		return
	}
	fb, _ := strconv.Atoi(f.Value)
	db, _ := strconv.Atoi(d.Value)
	if fb == 0 {
		return
	}
	amount := 1 + rng.IntN(fb)
	t := &store.Txn{
		Compares: []store.Compare{
			{Key: from, Target: store.TargetRevision, Cmp: store.CmpEqual, Revision: f.Revision},
			{Key: to, Target: store.TargetRevision, Cmp: store.CmpEqual, Revision: d.Revision},
		},
		Then: []store.TxnOp{
			{Op: store.OpPut, Key: from, Value: []byte(strconv.Itoa(fb - amount))},
			{Op: store.OpPut, Key: to, Value: []byte(strconv.Itoa(db + amount))},
		},
	}
	p := b.rec.Begin(id, t)
	res, err := b.clients[id].Txn(ctx, wireTxn(t))
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		p.End(history.TxnOutput{Succeeded: res.Succeeded, Revision: res.Revision})
		if res.Succeeded {
			b.applied++
		} else {
			b.conflict++
		}
	case refused(err):
		// Certainly not applied; recording it as unknown is sound, only weaker.
		b.refusedN++
		p.End(history.TxnOutput{Unknown: true})
	default:
		if e, ok := errors.AsType[*client.Error](err); ok && e.Status == http.StatusBadRequest {
			b.t.Errorf("transfer refused as malformed: %v", err)
		}
		b.unknownN++
		p.End(history.TxnOutput{Unknown: true})
	}
}

// verify checks the recorded history: the totals, the exclusivity of transfers conditioned
// on the same revision, and linearizability.
func (b *bank) verify(startRev int64) {
	t := b.t
	ops := b.rec.Ops()
	t.Logf("bank: %d ops, %d transfers applied, %d failed their compares, %d refused, %d unknown",
		len(ops), b.applied, b.conflict, b.refusedN, b.unknownN)
	for _, s := range b.badTotal {
		t.Errorf("a read saw money made or lost: %s", s)
	}
	if b.applied == 0 || b.conflict == 0 {
		t.Errorf("the workload did not exercise both branches: %d applied, %d conflicts", b.applied, b.conflict)
	}
	// Two acknowledged transfers conditioned on the same revision of a key: both read the
	// key as it was, so at most one may have applied.
	seen := map[history.KeyState]int{}
	for i, op := range ops {
		if op.Txn == nil || op.Out.Unknown || !op.Out.Succeeded {
			continue
		}
		for _, c := range op.Txn.Compares {
			k := history.KeyState{Value: c.Key, Revision: c.Revision}
			if j, dup := seen[k]; dup && c.Target == store.TargetRevision {
				t.Errorf("transfers %d and %d both applied on %s at revision %d", j, i, c.Key, c.Revision)
			}
			seen[k] = i
		}
	}
	began := time.Now()
	res, err := history.CheckTxn(ops, startRev, checkTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bank: %d ops checked in %v", res.Ops, time.Since(began).Round(time.Millisecond))
	if !res.Linearizable {
		path := failureDir(t) + "/txn-bank.html"
		if err := res.WriteHTML(path); err != nil {
			t.Error(err)
		}
		t.Fatalf("the bank history is not linearizable (undecided: %v); porcupine's report: %s", res.Unknown, path)
	}
}

// wireTxn is t as the API takes it.
func wireTxn(t *store.Txn) client.Txn {
	var w client.Txn
	for _, c := range t.Compares {
		wc := wire.Compare{Key: c.Key, Target: wire.TargetRevision, Revision: c.Revision}
		if c.Target == store.TargetExists {
			wc = wire.Compare{Key: c.Key, Target: wire.TargetAbsent}
		}
		w.Compare = append(w.Compare, wc)
	}
	for _, o := range t.Then {
		w.Then = append(w.Then, client.TxnPut(o.Key, o.Value))
	}
	return w
}
