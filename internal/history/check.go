package history

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

// Result is the verdict of Check.
type Result struct {
	// Linearizable is set when porcupine found a linearization of every key's history.
	Linearizable bool
	// Unknown is set when the checker ran out of time before deciding; Linearizable is then
	// false, but no violation was found either.
	Unknown bool
	Ops     int // operations given to the checker
	Dropped int // operations left out because they constrain nothing (see Check)
	Keys    int // distinct keys, one partition each

	info  porcupine.LinearizationInfo
	model porcupine.Model // the model checked; kvModel's when unset
}

// Check reports whether ops are linearizable against a key-value store in which each key is
// a register that may be absent. A timeout of zero means no limit.
//
// Two kinds of operation are left out, because they constrain nothing: a Get with an Unknown
// outcome, and a Put refused outright (OK and Unknown both false). A read changes no state,
// and an unknown one accepts any value, so it fits anywhere in any linearization of the
// others; likewise a write that certainly did not apply. Removing them admits no history
// that keeping them would reject.
//
// A write with an Unknown outcome is kept and given a Return of math.MaxInt64, the way the
// porcupine author suggests (anishathalye/porcupine#8): pending until after every other
// operation, it may be linearized at any point after its call, including last, where it
// affects nobody. Its recorded Return, when the client gave up, is not a bound on when the
// store may apply it, so it is ignored.
func Check(ops []Op, timeout time.Duration) (Result, error) {
	history, keys, err := operations(ops)
	if err != nil {
		return Result{}, err
	}
	verdict, info := porcupine.CheckOperationsVerbose(kvModel(), history, timeout)
	return Result{
		Linearizable: verdict == porcupine.Ok,
		Unknown:      verdict == porcupine.Unknown,
		Ops:          len(history),
		Dropped:      len(ops) - len(history),
		Keys:         keys,
		info:         info,
	}, nil
}

// operations converts ops to porcupine's form, dropping those that constrain nothing, and
// counts the distinct keys kept.
func operations(ops []Op) ([]porcupine.Operation, int, error) {
	out := make([]porcupine.Operation, 0, len(ops))
	keys := make(map[string]struct{})
	for n, op := range ops {
		if err := validate(op); err != nil {
			return nil, 0, fmt.Errorf("check history: op %d (%s %q by client %d): %w", n, op.Kind, op.Key, op.Client, err)
		}
		if constrainsNothing(op) {
			continue
		}
		ret := op.Return
		if op.Out.Unknown {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    input{kind: op.Kind, key: op.Key, value: op.Value, expect: op.Expect},
			Call:     op.Call,
			Output:   op.Out,
			Return:   ret,
		})
		keys[op.Key] = struct{}{}
	}
	return out, len(keys), nil
}

func constrainsNothing(op Op) bool {
	switch op.Kind {
	case Get:
		return op.Out.Unknown
	case Put:
		return !op.Out.OK && !op.Out.Unknown
	default:
		return false
	}
}

func validate(op Op) error {
	switch {
	case op.Kind < Put || op.Kind > Delete:
		return fmt.Errorf("kind %d: %w", int(op.Kind), ErrInvalidOp)
	case op.Client < 0:
		return fmt.Errorf("negative client: %w", ErrInvalidOp)
	case op.Call < 0:
		return fmt.Errorf("negative call time %d: %w", op.Call, ErrInvalidOp)
	case !op.Out.Unknown && op.Return < op.Call:
		return fmt.Errorf("returns at %d before its call at %d: %w", op.Return, op.Call, ErrInvalidOp)
	}
	return nil
}

// WriteHTML writes porcupine's interactive visualization of the checked history to path:
// every key's operations on a timeline and, for a failing history, the longest partial
// linearizations and the operation none of them could place. Open it in a browser.
func (r Result) WriteHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write linearizability report: %w", err)
	}
	model := r.model
	if model.Step == nil {
		model = kvModel()
	}
	if err := porcupine.Visualize(model, r.info, f); err != nil {
		_ = f.Close() // the write error is the one worth reporting
		return fmt.Errorf("write linearizability report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write linearizability report %s: %w", path, err)
	}
	return nil
}
