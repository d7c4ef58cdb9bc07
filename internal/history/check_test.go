package history_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/history"
)

// checkTimeout is generous: hand-built histories are decided in microseconds, and a test
// that hits it fails rather than passing on an undecided history.
const checkTimeout = time.Minute

// Constructors for hand-built histories; times are arbitrary units.

func put(client int, key, value string, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.Put, Key: key, Value: value, Call: call, Return: ret,
		Out: history.Output{OK: true}}
}

func get(client int, key, value string, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.Get, Key: key, Call: call, Return: ret,
		Out: history.Output{Value: value, Found: true}}
}

func getAbsent(client int, key string, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.Get, Key: key, Call: call, Return: ret}
}

func cas(client int, key, expect, value string, ok bool, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.CAS, Key: key, Value: value, Expect: expect,
		Call: call, Return: ret, Out: history.Output{OK: ok}}
}

func del(client int, key string, existed bool, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.Delete, Key: key, Call: call, Return: ret,
		Out: history.Output{OK: existed}}
}

// unknown marks op's outcome as unknown, as when the client timed out at op.Return.
func unknown(op history.Op) history.Op {
	op.Out = history.Output{Unknown: true}
	return op
}

func refused(op history.Op) history.Op {
	op.Out = history.Output{}
	return op
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		ops  []history.Op
		want bool
	}{
		{name: "empty", want: true},
		{name: "sequential", want: true, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			get(1, "x", "1", 20, 30),
			del(0, "x", true, 40, 50),
			getAbsent(1, "x", 60, 70),
			del(1, "x", false, 80, 90),
		}},
		{name: "concurrent read sees old or new", want: true, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			put(0, "x", "2", 20, 40),
			get(1, "x", "1", 25, 30),
			get(2, "x", "2", 30, 50),
		}},
		{name: "cas chain", want: true, ops: []history.Op{
			put(0, "x", "a", 0, 10),
			cas(1, "x", "a", "b", true, 20, 30),
			cas(2, "x", "a", "c", false, 40, 50),
			cas(2, "x", "b", "c", true, 60, 70),
			get(0, "x", "c", 80, 90),
		}},
		{name: "concurrent cas one wins", want: true, ops: []history.Op{
			put(0, "x", "a", 0, 10),
			cas(1, "x", "a", "b", true, 20, 40),
			cas(2, "x", "a", "c", false, 25, 35),
			get(0, "x", "b", 50, 60),
		}},
		{name: "cas from absent", want: true, ops: []history.Op{
			cas(0, "x", "", "a", true, 0, 10),
			cas(1, "x", "", "b", false, 20, 30),
			get(1, "x", "a", 40, 50),
		}},
		{name: "keys are independent", want: true, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			put(1, "y", "2", 5, 15),
			get(0, "y", "2", 20, 30),
			get(1, "x", "1", 20, 30),
			getAbsent(2, "z", 20, 30),
		}},
		{name: "refused put has no effect", want: true, ops: []history.Op{
			refused(put(0, "x", "1", 0, 10)),
			getAbsent(1, "x", 20, 30),
		}},
		{name: "unknown read constrains nothing", want: true, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			unknown(get(1, "x", "garbage", 20, 30)),
		}},

		{name: "stale read after acknowledged write", want: false, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			put(0, "x", "2", 20, 30),
			get(1, "x", "1", 40, 50),
		}},
		{name: "two cas succeed from the same value", want: false, ops: []history.Op{
			put(0, "x", "a", 0, 10),
			cas(1, "x", "a", "b", true, 20, 30),
			cas(2, "x", "a", "c", true, 25, 35),
		}},
		{name: "lost acknowledged write", want: false, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			getAbsent(1, "x", 20, 30),
		}},
		{name: "acknowledged write seen late", want: false, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			getAbsent(1, "x", 20, 30),
			get(1, "x", "1", 40, 50),
		}},
		{name: "delete reports absent key that exists", want: false, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			del(1, "x", false, 20, 30),
		}},
		{name: "failed cas while value matched", want: false, ops: []history.Op{
			put(0, "x", "a", 0, 10),
			cas(1, "x", "a", "b", false, 20, 30),
		}},
		{name: "read of a value never written", want: false, ops: []history.Op{
			get(0, "x", "ghost", 0, 10),
		}},
		{name: "violation on one key of many", want: false, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			put(1, "y", "1", 0, 10),
			get(0, "x", "1", 20, 30),
			getAbsent(1, "y", 20, 30),
		}},

		{name: "unknown write applied later", want: true, ops: []history.Op{
			unknown(put(0, "x", "1", 0, 10)),
			getAbsent(1, "x", 20, 30),
			get(1, "x", "1", 40, 50),
		}},
		{name: "unknown write never applied", want: true, ops: []history.Op{
			unknown(put(0, "x", "1", 0, 10)),
			getAbsent(1, "x", 20, 30),
			getAbsent(1, "x", 40, 50),
		}},
		{name: "unknown cas applied later", want: true, ops: []history.Op{
			put(0, "x", "a", 0, 10),
			unknown(cas(0, "x", "a", "b", false, 20, 25)),
			get(1, "x", "a", 30, 40),
			get(1, "x", "b", 50, 60),
		}},
		{name: "unknown delete applied later", want: true, ops: []history.Op{
			put(0, "x", "1", 0, 10),
			unknown(del(0, "x", false, 20, 25)),
			get(1, "x", "1", 30, 40),
			getAbsent(1, "x", 50, 60),
		}},
		{name: "unknown write cannot apply before its call", want: false, ops: []history.Op{
			get(1, "x", "1", 0, 10),
			unknown(put(0, "x", "1", 20, 30)),
		}},
		{name: "unknown write applies at most once", want: false, ops: []history.Op{
			unknown(put(0, "x", "1", 0, 10)),
			get(1, "x", "1", 20, 30),
			put(2, "x", "2", 40, 50),
			get(1, "x", "1", 60, 70),
		}},
		{name: "unknown cas cannot apply on a mismatch", want: false, ops: []history.Op{
			put(0, "x", "a", 0, 10),
			unknown(cas(0, "x", "z", "b", false, 20, 25)),
			get(1, "x", "b", 30, 40),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := history.Check(tt.ops, checkTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if res.Unknown {
				t.Fatal("checker timed out")
			}
			if res.Linearizable != tt.want {
				t.Errorf("Linearizable = %v, want %v", res.Linearizable, tt.want)
			}
			if res.Ops+res.Dropped != len(tt.ops) {
				t.Errorf("Ops %d + Dropped %d != %d operations", res.Ops, res.Dropped, len(tt.ops))
			}
		})
	}
}

func TestCheck_Counts(t *testing.T) {
	ops := []history.Op{
		put(0, "x", "1", 0, 10),
		put(0, "y", "1", 0, 10),
		refused(put(0, "z", "1", 0, 10)),
		unknown(get(1, "x", "", 20, 30)),
		get(1, "y", "1", 20, 30),
	}
	res, err := history.Check(ops, checkTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Linearizable || res.Ops != 3 || res.Dropped != 2 || res.Keys != 2 {
		t.Errorf("Check = %+v, want linearizable with 3 ops, 2 dropped, 2 keys", res)
	}
}

func TestCheck_Invalid(t *testing.T) {
	tests := []struct {
		name string
		op   history.Op
	}{
		{name: "zero kind", op: history.Op{Key: "x"}},
		{name: "kind out of range", op: history.Op{Kind: history.Delete + 1, Key: "x"}},
		{name: "negative client", op: put(-1, "x", "1", 0, 10)},
		{name: "negative call", op: put(0, "x", "1", -5, 10)},
		{name: "returns before call", op: put(0, "x", "1", 10, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := []history.Op{put(0, "x", "0", 0, 1), tt.op}
			_, err := history.Check(ops, checkTimeout)
			if !errors.Is(err, history.ErrInvalidOp) {
				t.Fatalf("Check = %v, want ErrInvalidOp", err)
			}
			if !strings.Contains(err.Error(), "op 1") {
				t.Errorf("error %q does not name the operation", err)
			}
		})
	}

	t.Run("unknown outcome may return before call", func(t *testing.T) {
		// Return is ignored for an unknown outcome, so a harness that never filled it in
		// is not wrong.
		op := unknown(put(0, "x", "1", 10, 0))
		if _, err := history.Check([]history.Op{op}, checkTimeout); err != nil {
			t.Fatal(err)
		}
	})
}

func TestResult_WriteHTML(t *testing.T) {
	t.Run("failing history", func(t *testing.T) {
		res, err := history.Check([]history.Op{
			put(0, "x", "1", 0, 10),
			put(0, "x", "2", 20, 30),
			get(1, "x", "1", 40, 50),
			unknown(put(2, "y", "1", 0, 10)),
		}, checkTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if res.Linearizable {
			t.Fatal("history should not be linearizable")
		}
		path := filepath.Join(t.TempDir(), "report.html")
		if err := res.WriteHTML(path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatal("report is empty")
		}
		for _, want := range []string{"<html", `put(\"x\", \"2\") -\u003e ok`, `get(\"x\") -\u003e \"1\"`, "unknown"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("report lacks %q", want)
			}
		}
	})

	t.Run("zero result", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.html")
		if err := (history.Result{}).WriteHTML(path); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unwritable path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "report.html")
		err := (history.Result{}).WriteHTML(path)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("WriteHTML = %v, want a wrapped ErrNotExist", err)
		}
	})
}

func TestKind_String(t *testing.T) {
	tests := map[history.Kind]string{
		history.Put:    "put",
		history.Get:    "get",
		history.CAS:    "cas",
		history.Delete: "delete",
		0:              "Kind(0)",
	}
	for k, want := range tests {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
