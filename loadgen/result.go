package loadgen

import (
	"time"
)

// Result is the outcome of a run. Its JSON form is the output of `mirrorkv bench --json`:
// durations are in nanoseconds, and keys of maps are the names of OpKind and ErrorKind.
type Result struct {
	Mix       string        `json:"mix"`
	Clients   int           `json:"clients"`
	Keys      int           `json:"keys"`
	ValueSize int           `json:"valueSize"`
	Elapsed   time.Duration `json:"elapsedNs"`
	Ops       int64         `json:"ops"`    // successful operations
	Errors    int64         `json:"errors"` // failed operations
	OpsPerSec float64       `json:"opsPerSec"`
	// Latency is over the successful operations of every kind.
	Latency Latency `json:"latencyNs"`
	// ErrorsByKind counts the failed operations by ErrorKind name; kinds that did not
	// occur are left out.
	ErrorsByKind map[string]int64 `json:"errorsByKind"`
	// PerOp has the same figures for each kind of operation in the mix.
	PerOp map[string]OpResult `json:"perOp"`

	hist Histogram
}

// OpResult is the part of a Result for one kind of operation.
type OpResult struct {
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"opsPerSec"`
	Latency   Latency `json:"latencyNs"`
}

// Latency summarises a histogram.
type Latency struct {
	P50  time.Duration `json:"p50"`
	P90  time.Duration `json:"p90"`
	P99  time.Duration `json:"p99"`
	P999 time.Duration `json:"p999"`
	Max  time.Duration `json:"max"`
	Mean time.Duration `json:"mean"`
}

// Summarize reads the usual quantiles of h.
func Summarize(h *Histogram) Latency {
	return Latency{
		P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99),
		P999: h.Quantile(0.999), Max: h.Max(), Mean: h.Mean(),
	}
}

// Histogram returns the latencies of every successful operation of the run.
func (res *Result) Histogram() *Histogram { return &res.hist }

func (r *runner) result(elapsed time.Duration) *Result {
	res := &Result{
		Mix: r.cfg.Mix.String(), Clients: r.cfg.Clients, Keys: r.cfg.Keys, ValueSize: r.cfg.ValueSize,
		Elapsed: elapsed, ErrorsByKind: map[string]int64{}, PerOp: map[string]OpResult{},
	}
	var perOp [numOpKinds]Histogram
	var kinds [numErrorKinds]int64
	for _, w := range r.workers {
		for k, h := range w.hist {
			if h != nil {
				perOp[k].Merge(h)
			}
		}
		for k, n := range w.kinds {
			kinds[k] += n
		}
		res.Errors += w.errs.Load()
	}
	secs := elapsed.Seconds()
	for k := range perOp {
		h := &perOp[k]
		res.hist.Merge(h)
		if r.workers[0].hist[k] == nil {
			continue // not in the mix
		}
		n := int64(h.Count())
		res.PerOp[OpKind(k).String()] = OpResult{Ops: n, OpsPerSec: rate(n, secs), Latency: Summarize(h)}
	}
	for k, n := range kinds {
		if n > 0 {
			res.ErrorsByKind[ErrorKind(k).String()] = n
		}
	}
	res.Ops = int64(res.hist.Count())
	res.OpsPerSec = rate(res.Ops, secs)
	res.Latency = Summarize(&res.hist)
	return res
}

func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}
