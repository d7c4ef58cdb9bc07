package loadgen

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The generator's cost per operation, and the same operation against an in-process HTTPS
// server with mutual TLS that does no work (NopHandler). Their ratio bounds how much of a
// benchmark's time is spent in the generator: see docs/benchmarks.md.

// BenchmarkGenerator is the generator alone: pick a kind and a key, call a target that does
// nothing, record the latency.
func BenchmarkGenerator(b *testing.B) {
	nop := TargetFunc(func(context.Context, Op) error { return nil })
	w := benchWorker(b, nop, Config{Mix: Mix{Write: 0.1, Read: 0.9}})
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		w.one(ctx)
	}
}

// BenchmarkGenerator_Parallel is the generator alone with one worker per goroutine, to show
// that workers share no hot cache line.
func BenchmarkGenerator_Parallel(b *testing.B) {
	nop := TargetFunc(func(context.Context, Op) error { return nil })
	r := benchRunner(b, nop, Config{Mix: Mix{Write: 0.1, Read: 0.9}})
	var seed sync.Mutex
	next := uint64(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		seed.Lock()
		next++
		w := newWorker(r, next)
		seed.Unlock()
		ctx := context.Background()
		for pb.Next() {
			w.one(ctx)
		}
	})
}

// BenchmarkClientTarget_HTTPS is one 256-byte PUT through the mirrorkv client over
// loopback mTLS to a server that does nothing, without the generator.
func BenchmarkClientTarget_HTTPS(b *testing.B) {
	srv := startMTLS(b, NopHandler(256))
	target := ClientTarget{srv.newClient(b, nil)}
	op := Op{Kind: Write, Key: "bench/0", Value: Config{}.withDefaults().value()}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := target.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerator_HTTPS is the same PUT driven by the generator: the difference from
// BenchmarkClientTarget_HTTPS is the generator's share.
func BenchmarkGenerator_HTTPS(b *testing.B) {
	srv := startMTLS(b, NopHandler(256))
	w := benchWorker(b, ClientTarget{srv.newClient(b, nil)}, Config{})
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		w.one(ctx)
	}
	if n := w.errs.Load(); n > 0 {
		b.Fatalf("%d errors: %v", n, w.kinds)
	}
}

func benchRunner(tb testing.TB, t Target, cfg Config) *runner {
	tb.Helper()
	cfg = cfg.withDefaults()
	return &runner{cfg: cfg, target: t, keys: cfg.keys(), value: cfg.value(), epoch: time.Now()}
}

func benchWorker(tb testing.TB, t Target, cfg Config) *worker {
	tb.Helper()
	return newWorker(benchRunner(tb, t, cfg), 1)
}
