package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mirrorkv/mirrorkv/wire"
)

// counter is a target that counts what it is asked to do.
type counter struct {
	mu    sync.Mutex
	kinds [numOpKinds]int
	keys  map[string]int
}

func (c *counter) Do(_ context.Context, op Op) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kinds[op.Kind]++
	if c.keys == nil {
		c.keys = map[string]int{}
	}
	c.keys[op.Key]++
	return nil
}

func (c *counter) total() int {
	return c.kinds[Write] + c.kinds[Read] + c.kinds[StaleRead] + c.kinds[Txn]
}

func TestRun_HTTPS(t *testing.T) {
	var puts, gets atomic.Int64
	nop := NopHandler(64)
	srv := startMTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/kv/bench/") || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "unexpected request "+r.URL.Path, http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodPut:
			puts.Add(1)
		case http.MethodGet:
			gets.Add(1)
		}
		nop.ServeHTTP(w, r)
	}))
	c := srv.newClient(t, nil)
	res, err := Run(t.Context(), ClientTarget{c}, Config{Clients: 4, Ops: 400, Mix: Mix{Write: 0.5, Read: 0.25, StaleRead: 0.25}, Keys: 50, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 400 || res.Errors != 0 {
		t.Fatalf("ops %d errors %d (%v), want 400 and 0", res.Ops, res.Errors, res.ErrorsByKind)
	}
	if got := puts.Load() + gets.Load(); got != 400 {
		t.Errorf("the server saw %d requests, want 400", got)
	}
	if w := res.PerOp["write"].Ops; w != puts.Load() {
		t.Errorf("result counts %d writes, the server %d PUTs", w, puts.Load())
	}
	if res.OpsPerSec <= 0 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P999 || res.Latency.P999 < res.Latency.P50 {
		t.Errorf("implausible figures: %+v", res)
	}
}

func TestRun_Latency(t *testing.T) {
	// The n-th operation takes (n mod 100)+1 ms of fake time, so each of 1..100 ms occurs
	// exactly 10 times in 1000 operations.
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		target := TargetFunc(func(context.Context, Op) error {
			time.Sleep(time.Duration((n.Add(1)-1)%100+1) * time.Millisecond)
			return nil
		})
		res, err := Run(t.Context(), target, Config{Ops: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name      string
			got, want time.Duration
		}{
			{"p50", res.Latency.P50, 50 * time.Millisecond},
			{"p90", res.Latency.P90, 90 * time.Millisecond},
			{"p99", res.Latency.P99, 99 * time.Millisecond},
			{"p99.9", res.Latency.P999, 100 * time.Millisecond},
			{"max", res.Latency.Max, 100 * time.Millisecond},
			{"mean", res.Latency.Mean, 50500 * time.Microsecond},
		} {
			if tc.got < tc.want || float64(tc.got) > float64(tc.want)*(1+1.0/subBuckets) {
				t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
			}
		}
		if want := 50500 * time.Millisecond; res.Elapsed != want {
			t.Errorf("elapsed %s, want %s", res.Elapsed, want)
		}
	})
}

func TestRun_Stop(t *testing.T) {
	t.Run("ops", func(t *testing.T) {
		var c counter
		res, err := Run(t.Context(), &c, Config{Clients: 8, Ops: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if c.total() != 1000 || res.Ops != 1000 {
			t.Errorf("target called %d times, result %d ops, want 1000", c.total(), res.Ops)
		}
	})
	t.Run("duration", func(t *testing.T) {
		// Each operation takes 300 ms of fake time: by 10 s each of 2 workers has started
		// its 34th (at 9.9 s), which ends at 10.2 s.
		synctest.Test(t, func(t *testing.T) {
			target := TargetFunc(func(context.Context, Op) error { time.Sleep(300 * time.Millisecond); return nil })
			res, err := Run(t.Context(), target, Config{Clients: 2, Duration: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 68 || res.Elapsed != 10200*time.Millisecond {
				t.Errorf("%d ops in %s, want 68 in 10.2s", res.Ops, res.Elapsed)
			}
			if want := 68 / 10.2; math.Abs(res.OpsPerSec-want) > 1e-9 {
				t.Errorf("%g ops/s, want %g", res.OpsPerSec, want)
			}
		})
	})
	t.Run("cancel", func(t *testing.T) {
		// Operations cut short by the caller's cancellation are not errors of the target.
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 950*time.Millisecond)
			defer cancel()
			target := TargetFunc(func(ctx context.Context, _ Op) error {
				select {
				case <-time.After(100 * time.Millisecond):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			res, err := Run(ctx, target, Config{Clients: 3, Duration: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 27 || res.Errors != 0 || res.Elapsed != 950*time.Millisecond {
				t.Errorf("%d ops, %d errors in %s; want 27, 0 in 950ms", res.Ops, res.Errors, res.Elapsed)
			}
		})
	})
}

func TestRun_Mix(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		mix  string
		want [numOpKinds]float64
	}{
		{"write", [numOpKinds]float64{Write: 1}},
		{"read", [numOpKinds]float64{Read: 1}},
		{"stale-read", [numOpKinds]float64{StaleRead: 1}},
		{"txn", [numOpKinds]float64{Txn: 1}},
		{"mixed:90", [numOpKinds]float64{Read: 0.9, Write: 0.1}},
		{"mixed:50", [numOpKinds]float64{Read: 0.5, Write: 0.5}},
	} {
		t.Run(tc.mix, func(t *testing.T) {
			mix, err := ParseMix(tc.mix)
			if err != nil {
				t.Fatal(err)
			}
			var c counter
			res, err := Run(t.Context(), &c, Config{Clients: 4, Ops: n, Mix: mix, Keys: 100})
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				// 5 standard deviations of a binomial share: a false alarm once in millions.
				tol := 5 * math.Sqrt(want*(1-want)/n)
				if got := float64(c.kinds[k]) / n; math.Abs(got-want) > tol {
					t.Errorf("%s share %.4f, want %.2f ± %.4f", OpKind(k), got, want, tol)
				}
				if want > 0 && res.PerOp[OpKind(k).String()].Ops != int64(c.kinds[k]) {
					t.Errorf("result counts %d %s, the target %d", res.PerOp[OpKind(k).String()].Ops, OpKind(k), c.kinds[k])
				}
			}
			if len(c.keys) != 100 {
				t.Errorf("%d distinct keys used, want all 100", len(c.keys))
			}
			if res.Mix != tc.mix {
				t.Errorf("result mix %q, want %q", res.Mix, tc.mix)
			}
		})
	}
}

func TestRun_Progress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []Progress
		// 7 ms per operation: no operation ends on a report's tick.
		target := TargetFunc(func(context.Context, Op) error { time.Sleep(7 * time.Millisecond); return nil })
		_, err := Run(t.Context(), target, Config{Duration: 3500 * time.Millisecond, Progress: func(p Progress) { got = append(got, p) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("%d progress reports in 3.5 s, want 3: %+v", len(got), got)
		}
		for i, p := range got {
			ops := int64(i+1) * 1000 / 7
			rate := float64(ops - int64(i)*1000/7)
			if p.Elapsed != time.Duration(i+1)*time.Second || p.Ops != ops || p.Rate != rate {
				t.Errorf("report %d = %+v, want %ds, %d ops at %g/s", i, p, i+1, ops, rate)
			}
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	err := Config{Clients: -1, Duration: -time.Second, Ops: -1, Keys: -1, ValueSize: -1, Timeout: -1, Mix: Mix{Write: 0.5}}.Validate()
	for _, want := range []string{"clients", "duration", "ops", "keys", "value size", "timeout", "add up to 0.5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
	if _, err := Run(t.Context(), &counter{}, Config{Clients: -1}); err == nil {
		t.Error("Run accepted a bad config")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config is invalid: %v", err)
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mix
		err  bool
	}{
		{in: "write", want: WriteOnly},
		{in: "read", want: ReadOnly},
		{in: "stale-read", want: StaleReadOnly},
		{in: "txn", want: TxnOnly},
		{in: "mixed:90", want: Mix{Read: 0.9, Write: 0.1}},
		{in: "mixed:0", want: Mix{Write: 1}},
		{in: "mixed:12.5", want: Mix{Read: 0.125, Write: 0.875}},
		{in: "mixed:101", err: true},
		{in: "mixed:-1", err: true},
		{in: "mixed:", err: true},
		{in: "mixed", err: true},
		{in: "writes", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMix(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("ParseMix(%q) = %+v, %v; want %+v, error %t", tc.in, got, err, tc.want, tc.err)
			}
			if err == nil && got != WriteOnly {
				if back, _ := ParseMix(got.String()); back != got {
					t.Errorf("%q does not round-trip: %q", tc.in, got.String())
				}
			}
		})
	}
}

func TestFill(t *testing.T) {
	var c counter
	if err := Fill(t.Context(), &c, Config{Clients: 8, Keys: 1234}); err != nil {
		t.Fatal(err)
	}
	if len(c.keys) != 1234 || c.kinds[Write] != 1234 {
		t.Errorf("%d keys in %d writes, want each of 1234 written once", len(c.keys), c.kinds[Write])
	}
	boom := errors.New("boom")
	var calls atomic.Int64
	err := Fill(t.Context(), TargetFunc(func(ctx context.Context, _ Op) error {
		switch n := calls.Add(1); {
		case n == 10:
			return boom
		case n > 10:
			// In flight until Fill gives up on it: a worker can start at most one more.
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}), Config{Clients: 2, Keys: 1000})
	if !errors.Is(err, boom) || calls.Load() > 12 {
		t.Errorf("Fill = %v after %d calls, want boom, and at most one call per client after call 10", err, calls.Load())
	}
}

// A txn op is one POST /v1/txn that compares its first key's existence and puts both keys;
// an answer that the compare failed counts as an error, since every key was written first.
func TestRun_Txn(t *testing.T) {
	var txns, fills atomic.Int64
	var failCompare atomic.Bool
	nop := NopHandler(8)
	srv := startMTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut:
			fills.Add(1)
			nop.ServeHTTP(w, r)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/txn":
			var txn wire.Txn
			if err := json.NewDecoder(r.Body).Decode(&txn); err != nil || len(txn.Compare) != 1 ||
				txn.Compare[0].Target != wire.TargetExists || len(txn.Then) != 2 || len(txn.Then[1].ValueBase64) != 8 ||
				txn.Then[0].Key != txn.Compare[0].Key || txn.Then[1].Key == txn.Then[0].Key {
				http.Error(w, fmt.Sprintf("unexpected txn %+v (%v)", txn, err), http.StatusBadRequest)
				return
			}
			txns.Add(1)
			if failCompare.Load() {
				_, _ = w.Write([]byte(`{"succeeded":false,"revision":1}`))
				return
			}
			nop.ServeHTTP(w, r)
		default:
			http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		}
	}))
	c := srv.newClient(t, nil)
	cfg := Config{Clients: 2, Ops: 100, Mix: TxnOnly, Keys: 10, ValueSize: 8}
	if !cfg.Mix.Reads() {
		t.Fatal("the txn mix does not have the keys written first")
	}
	if err := Fill(t.Context(), ClientTarget{c}, cfg); err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), ClientTarget{c}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 100 || res.Errors != 0 || txns.Load() != 100 || fills.Load() != 10 {
		t.Fatalf("%d ops, %d errors (%v); the server saw %d txns and %d fill puts; want 100, 0, 100, 10",
			res.Ops, res.Errors, res.ErrorsByKind, txns.Load(), fills.Load())
	}
	failCompare.Store(true)
	res, err = Run(t.Context(), ClientTarget{c}, Config{Clients: 1, Ops: 5, Mix: TxnOnly, Keys: 10, ValueSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 5 {
		t.Errorf("%d errors when every compare failed, want 5", res.Errors)
	}
}
