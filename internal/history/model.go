package history

import (
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/anishathalye/porcupine"
)

// input is what porcupine sees as an operation's call; the Output is its return.
type input struct {
	kind               Kind
	key, value, expect string
}

// state is one key's register. It is a comparable value so that porcupine's default ==
// equality applies and Step can return it without copying.
type state struct {
	value  string
	exists bool
}

// kvModel is the sequential specification of the store, one register per key. It is built
// on demand rather than held in a package variable: the house style has no globals, and it
// costs nothing.
func kvModel() porcupine.Model {
	return porcupine.Model{
		Partition:         partition,
		Init:              func() any { return state{} },
		Step:              step,
		Hash:              hash,
		DescribeOperation: describeOperation,
		DescribeState:     describeState,
	}
}

// step applies one operation to a key's state and reports whether the observed output is
// possible there. An Unknown output accepts every outcome: porcupine keeps such an
// operation pending until the end of the history (see Check), so the write is either
// applied at some point after its call or, placed last, never observed at all.
func step(st, in, out any) (bool, any) {
	s, i, o := st.(state), in.(input), out.(Output)
	switch i.kind {
	case Get:
		if o.Unknown {
			return true, s
		}
		return o.Found == s.exists && (!s.exists || o.Value == s.value), s
	case Put:
		if !o.OK && !o.Unknown {
			return true, s // refused outright: no effect (Check drops these anyway)
		}
		return true, state{value: i.value, exists: true}
	case Delete:
		if o.Unknown {
			return true, state{}
		}
		// OK=false is a valid answer, "it was not there", and is itself a read.
		return o.OK == s.exists, state{}
	case CAS:
		holds := (i.expect == "" && !s.exists) || (s.exists && s.value == i.expect)
		next := s
		if holds {
			next = state{value: i.value, exists: true}
		}
		if o.Unknown {
			return true, next
		}
		// A failed CAS is a read too: it says the key did not hold Expect.
		return o.OK == holds, next
	default:
		return false, s
	}
}

// partition splits the history by key: keys are independent registers, so the history is
// linearizable exactly when each key's is, and checking them apart is exponentially cheaper.
// Keys are sorted so that partitions, and the HTML report, come out in a stable order.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Input.(input).key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// hash lets porcupine's cache tell states apart without calling == on every entry.
func hash(st any) uint64 {
	s := st.(state)
	h := fnv.New64a()
	_, _ = h.Write([]byte(s.value)) // hash.Hash writes never fail
	if s.exists {
		_, _ = h.Write([]byte{1})
	}
	return h.Sum64()
}

func describeState(st any) string {
	s := st.(state)
	if !s.exists {
		return "absent"
	}
	return fmt.Sprintf("%q", s.value)
}

func describeOperation(in, out any) string {
	i, o := in.(input), out.(Output)
	var call, result string
	switch i.kind {
	case Get:
		call = fmt.Sprintf("get(%q)", i.key)
		result = describeState(state{value: o.Value, exists: o.Found})
	case Put:
		call = fmt.Sprintf("put(%q, %q)", i.key, i.value)
		result = okOr(o.OK, "failed")
	case Delete:
		call = fmt.Sprintf("delete(%q)", i.key)
		result = okOr(o.OK, "absent")
	case CAS:
		expect := describeState(state{value: i.expect, exists: i.expect != ""})
		call = fmt.Sprintf("cas(%q, %s -> %q)", i.key, expect, i.value)
		result = okOr(o.OK, "mismatch")
	default:
		call = i.kind.String()
	}
	if o.Unknown {
		result = "unknown"
	}
	return call + " -> " + result
}

func okOr(ok bool, failure string) string {
	if ok {
		return "ok"
	}
	return failure
}
