// Package loadgen is mirrorkv's load generator: a closed-loop runner that keeps a number of
// workers each issuing one operation after another against a Target, and reports
// throughput, latency quantiles and errors by kind. The same runner drives a mirrorkv group
// (ClientTarget), a do-nothing server with the same mutual TLS (NopHandler), and, in the
// comparison under bench/compare, etcd; so differences in the numbers are differences in
// the systems.
//
// The generator must not be the bottleneck: each worker owns its random source, its
// histograms and its counters, keys and the value are made once, and recording a sample is
// a few instructions (BenchmarkGenerator measures it). Being closed-loop, it measures
// latency as a client sees it at a given concurrency, not under an open arrival rate: a
// stalled server slows the arrival of requests too (coordinated omission), so compare p99s
// at the same number of clients only.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config's zero values.
const (
	DefaultClients   = 1
	DefaultDuration  = 10 * time.Second
	DefaultKeys      = 1000
	DefaultValueSize = 256
	DefaultKeyPrefix = "bench/"
)

// Config is a run. Zero values take the defaults above.
type Config struct {
	Clients  int           // concurrent workers, each with at most one operation in flight
	Duration time.Duration // stop after this long; ignored when Ops is set
	Ops      int64         // stop after this many operations (successful or not)
	Mix      Mix           // share of each operation kind; zero: writes only
	Keys     int           // operations pick keys uniformly among this many
	// ValueSize is the size of each written value in bytes.
	ValueSize int
	KeyPrefix string
	// Timeout bounds each operation; zero leaves it to the target (the mirrorkv client
	// has its own).
	Timeout time.Duration
	// Seed makes the choice of keys and kinds repeatable; zero picks one at random.
	Seed uint64
	// Progress, if set, is called every ProgressEvery (default 1 s) from another goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a snapshot of a running run.
type Progress struct {
	Elapsed time.Duration
	Ops     int64   // successful operations so far
	Errors  int64   // failed operations so far
	Rate    float64 // successful operations per second since the last snapshot
}

func (c Config) withDefaults() Config {
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = DefaultDuration
	}
	if c.Mix == (Mix{}) {
		c.Mix = WriteOnly
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.ValueSize == 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return c
}

// Validate returns every problem of c.
func (c Config) Validate() error {
	var errs []error
	if c.Clients < 0 {
		errs = append(errs, fmt.Errorf("clients %d: want at least 1", c.Clients))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %s: want a positive duration", c.Duration))
	}
	if c.Ops < 0 {
		errs = append(errs, fmt.Errorf("ops %d: want a positive count", c.Ops))
	}
	if c.Keys < 0 {
		errs = append(errs, fmt.Errorf("keys %d: want at least 1", c.Keys))
	}
	if c.ValueSize < 0 {
		errs = append(errs, fmt.Errorf("value size %d: want 0 or more bytes", c.ValueSize))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: want a positive duration", c.Timeout))
	}
	if c.Mix != (Mix{}) {
		if err := c.Mix.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keys returns the key names a run with c uses: the prefix and a zero-padded number.
func (c Config) keys() []string {
	keys := make([]string, c.Keys)
	width := len(strconv.Itoa(c.Keys - 1))
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%0*d", c.KeyPrefix, width, i)
	}
	return keys
}

func (c Config) value() []byte {
	v := make([]byte, c.ValueSize)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// runner is the state shared by the workers of one run.
type runner struct {
	cfg     Config
	target  Target
	keys    []string
	value   []byte
	stop    atomic.Bool
	issued  atomic.Int64 // operations started, when cfg.Ops bounds the run
	workers []*worker
	// epoch is the run's start; time.Since(epoch) reads only the monotonic clock, which
	// costs a third of a time.Now on a virtual machine.
	epoch time.Time
}

// Run drives target with cfg.Clients workers until cfg.Ops operations have been issued or
// cfg.Duration has passed, then waits for the operations in flight and reports. Cancelling
// ctx stops the run early; operations cut short by that are not counted. Run returns an
// error only for a bad Config.
func Run(ctx context.Context, target Target, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("load run: %w", err)
	}
	cfg = cfg.withDefaults()
	r := &runner{cfg: cfg, target: target, keys: cfg.keys(), value: cfg.value(), epoch: time.Now()}
	for i := range cfg.Clients {
		r.workers = append(r.workers, newWorker(r, cfg.Seed+uint64(i)))
	}
	start := time.Now()
	stopWatch := r.watch(ctx)
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() { w.run(ctx) })
	}
	finished := make(chan struct{})
	progressDone := r.report(start, finished)
	wg.Wait()
	elapsed := time.Since(start)
	stopWatch()
	close(finished)
	<-progressDone
	return r.result(elapsed), nil
}

// watch sets the stop flag when ctx ends or the duration passes; the workers poll the
// flag, which costs an atomic load instead of a context check per operation.
func (r *runner) watch(ctx context.Context) (stop func()) {
	var timer *time.Timer
	if r.cfg.Ops == 0 {
		timer = time.AfterFunc(r.cfg.Duration, func() { r.stop.Store(true) })
	}
	unregister := context.AfterFunc(ctx, func() { r.stop.Store(true) })
	return func() {
		if timer != nil {
			timer.Stop()
		}
		unregister()
		r.stop.Store(true)
	}
}

// report calls cfg.Progress until finished closes; the channel it returns closes when it
// has stopped.
func (r *runner) report(start time.Time, finished <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	if r.cfg.Progress == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		var lastOps int64
		last := start
		for {
			select {
			case <-finished:
				return
			case <-t.C:
			}
			now := time.Now()
			p := Progress{Elapsed: now.Sub(start)}
			for _, w := range r.workers {
				p.Ops += w.ops.Load()
				p.Errors += w.errs.Load()
			}
			p.Rate = float64(p.Ops-lastOps) / now.Sub(last).Seconds()
			lastOps, last = p.Ops, now
			r.cfg.Progress(p)
		}
	}()
	return done
}

// worker issues one operation at a time. Its histograms and error counts are its own; ops
// and errs are atomic only so that the progress reporter may read them.
type worker struct {
	r     *runner
	rng   *rand.Rand
	hist  [numOpKinds]*Histogram
	kinds [numErrorKinds]int64
	ops   atomic.Int64
	errs  atomic.Int64
	_     [64]byte // keep two workers' counters off one cache line
}

func newWorker(r *runner, seed uint64) *worker {
	w := &worker{r: r, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	m := r.cfg.Mix
	for k, share := range [numOpKinds]float64{Write: m.Write, Read: m.Read, StaleRead: m.StaleRead, Txn: m.Txn} {
		if share > 0 {
			w.hist[k] = new(Histogram)
		}
	}
	return w
}

func (w *worker) run(ctx context.Context) {
	limit := w.r.cfg.Ops
	for !w.r.stop.Load() {
		if limit > 0 && w.r.issued.Add(1) > limit {
			return
		}
		w.one(ctx)
	}
}

// next picks the next operation.
func (w *worker) next() Op {
	n := len(w.r.keys)
	i := w.rng.IntN(n)
	op := Op{Kind: w.r.cfg.Mix.pick(w.rng.Float64()), Key: w.r.keys[i]}
	switch op.Kind {
	case Write:
		op.Value = w.r.value
	case Txn:
		op.Value = w.r.value
		// A transaction may not write one key twice: the second key is another one.
		if n > 1 {
			op.Key2 = w.r.keys[(i+1+w.rng.IntN(n-1))%n]
		}
	}
	return op
}

// one runs and records one operation.
func (w *worker) one(ctx context.Context) {
	op := w.next()
	opCtx, cancel := ctx, context.CancelFunc(nil)
	if w.r.cfg.Timeout > 0 {
		opCtx, cancel = context.WithTimeout(ctx, w.r.cfg.Timeout)
	}
	start := time.Since(w.r.epoch)
	err := w.r.target.Do(opCtx, op)
	lat := time.Since(w.r.epoch) - start
	if cancel != nil {
		cancel()
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the run was cancelled: not the target's doing
		}
		w.kinds[Classify(err)]++
		w.errs.Add(1)
		return
	}
	w.hist[op.Kind].Record(lat)
	w.ops.Add(1)
}
