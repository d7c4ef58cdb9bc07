package history

import (
	"math"
	"sync"
	"time"
)

// Recorder collects operations from concurrent clients. It is safe for concurrent use.
type Recorder struct {
	// start anchors timestamps; time.Since reads its monotonic reading, so wall clock
	// steps during a test cannot reorder operations.
	start time.Time

	mu   sync.Mutex
	ops  []Op
	done []bool // done[i] is set once ops[i] has ended
}

// Pending is an operation that has been called and not yet returned.
type Pending struct {
	r *Recorder
	i int
}

// NewRecorder returns a recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now()}
}

// Begin records the call of an operation. Call it immediately before sending the request,
// so that the recorded interval contains the operation's real effect.
func (r *Recorder) Begin(client int, kind Kind, key, value, expect string) *Pending {
	op := Op{Client: client, Kind: kind, Key: key, Value: value, Expect: expect}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Read the clock under the lock so that Call times are in the order of the slice,
	// which keeps Ops readable; correctness does not depend on it.
	op.Call = r.now()
	r.ops = append(r.ops, op)
	r.done = append(r.done, false)
	return &Pending{r: r, i: len(r.ops) - 1}
}

// End records the return of the operation with what the client observed. Call it as soon
// as the answer arrives. Only the first End of a Pending counts.
func (p *Pending) End(out Output) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done[p.i] {
		return
	}
	r.done[p.i] = true
	r.ops[p.i].Return = r.now()
	r.ops[p.i].Out = out
}

// Ops returns a copy of the history so far. Operations not yet ended are reported with an
// Unknown outcome and a Return of math.MaxInt64: a client still waiting may yet see its
// write applied.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Op, len(r.ops))
	copy(out, r.ops)
	for i := range out {
		if !r.done[i] {
			out[i].Return = math.MaxInt64
			out[i].Out = Output{Unknown: true}
		}
	}
	return out
}

func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }
