package history_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/history"
)

// store is an in-memory KV store that is linearizable by construction: every operation runs
// under one lock, between the client's Begin and End.
type store struct {
	mu sync.Mutex
	kv map[string]string
}

// do runs one random operation for client and records it. A few operations "time out":
// they are applied or not at random and recorded with an Unknown outcome.
func (s *store) do(rec *history.Recorder, rng *rand.Rand, client, seq int) {
	key := fmt.Sprintf("k%d", rng.IntN(3))
	value := fmt.Sprintf("c%d-%d", client, seq) // unique, as CAS on values requires
	kind := history.Kind(1 + rng.IntN(4))
	s.mu.Lock()
	expect := s.kv[key] // what a client that read just before would expect
	s.mu.Unlock()
	if rng.IntN(4) == 0 {
		expect = "stale"
	}
	p := rec.Begin(client, kind, key, value, expect)
	out := s.apply(kind, key, value, expect, rng.IntN(20) != 0 || kind == history.Get)
	if rng.IntN(30) == 0 {
		out = history.Output{Unknown: true}
	}
	p.End(out)
}

func (s *store) apply(kind history.Kind, key, value, expect string, commit bool) history.Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, found := s.kv[key]
	switch {
	case !commit:
		return history.Output{Unknown: true}
	case kind == history.Get:
		return history.Output{Value: cur, Found: found}
	case kind == history.Put:
		s.kv[key] = value
		return history.Output{OK: true}
	case kind == history.Delete:
		delete(s.kv, key)
		return history.Output{OK: found}
	default: // CAS
		if (expect == "" && !found) || (found && cur == expect) {
			s.kv[key] = value
			return history.Output{OK: true}
		}
		return history.Output{}
	}
}

func TestRecorder(t *testing.T) {
	t.Run("concurrent clients", func(t *testing.T) {
		const clients, perClient = 8, 150
		rec := history.NewRecorder()
		s := &store{kv: make(map[string]string)}
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 42))
				for i := range perClient {
					s.do(rec, rng, c, i)
				}
			})
		}
		// Reading the history while it is written must be safe too.
		wg.Go(func() {
			for range 20 {
				_ = rec.Ops()
			}
		})
		wg.Wait()

		ops := rec.Ops()
		if len(ops) != clients*perClient {
			t.Fatalf("recorded %d ops, want %d", len(ops), clients*perClient)
		}
		for i, op := range ops {
			if op.Return < op.Call {
				t.Fatalf("op %d returned at %d before its call at %d", i, op.Return, op.Call)
			}
		}
		res, err := history.Check(ops, checkTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Linearizable {
			t.Fatalf("history of a linearizable store is not linearizable: %+v", res)
		}
	})

	t.Run("pending ops are unknown", func(t *testing.T) {
		rec := history.NewRecorder()
		rec.Begin(0, history.Put, "x", "1", "")
		done := rec.Begin(1, history.Get, "x", "", "")
		done.End(history.Output{Value: "1", Found: true})
		done.End(history.Output{}) // only the first End counts

		ops := rec.Ops()
		if len(ops) != 2 {
			t.Fatalf("recorded %d ops, want 2", len(ops))
		}
		if !ops[0].Out.Unknown || ops[0].Return != math.MaxInt64 {
			t.Errorf("pending op = %+v, want an unknown outcome that never returns", ops[0])
		}
		if want := (history.Output{Value: "1", Found: true}); ops[1].Out != want {
			t.Errorf("ended op output = %+v, want %+v", ops[1].Out, want)
		}
		// The Get saw the pending Put's value, which it may have: still linearizable.
		res, err := history.Check(ops, checkTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Linearizable {
			t.Error("history with a pending write that was observed is not linearizable")
		}
	})

	t.Run("records call order", func(t *testing.T) {
		rec := history.NewRecorder()
		a := rec.Begin(0, history.Put, "x", "1", "")
		b := rec.Begin(1, history.Put, "x", "2", "")
		b.End(history.Output{OK: true})
		a.End(history.Output{OK: true})
		ops := rec.Ops()
		if ops[0].Value != "1" || ops[1].Value != "2" {
			t.Fatalf("ops out of call order: %+v", ops)
		}
		if ops[0].Call > ops[1].Call || ops[1].Return > ops[0].Return {
			t.Errorf("intervals %d..%d and %d..%d, want the second nested in the first",
				ops[0].Call, ops[0].Return, ops[1].Call, ops[1].Return)
		}
	})
}
