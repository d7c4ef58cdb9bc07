package arrival

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestReadFull(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes: several doublings
	for _, tc := range []struct {
		name    string
		r       io.Reader
		n       int64
		want    []byte
		wantErr error
	}{
		{"empty", bytes.NewReader(nil), 0, []byte{}, nil},
		{"exact", bytes.NewReader(data), int64(len(data)), data, nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data[:1000])), 1000, data[:1000], nil},
		{"stops at n", bytes.NewReader(data), 70000, data[:70000], nil},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(data[:10])), 10, data[:10], nil},
		{"nothing sent", bytes.NewReader(nil), 10, nil, io.EOF},
		{"short", bytes.NewReader(data[:100]), 1 << 20, nil, io.ErrUnexpectedEOF},
		{"reader fails", iotest.ErrReader(iotest.ErrTimeout), 10, nil, iotest.ErrTimeout},
		{"negative", bytes.NewReader(data), -1, nil, ErrNegative},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFull(tc.r, tc.n)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

// TestReadFull_Unsent checks the point of the package: a length that is declared but never
// sent allocates FirstStep, not the length.
func TestReadFull_Unsent(t *testing.T) {
	const declared = 64 << 20
	alloc := allocated(func() {
		if _, err := ReadFull(bytes.NewReader([]byte("hello")), declared); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
	if alloc > 2*FirstStep {
		t.Errorf("a declared %d bytes with 5 sent allocated %d bytes, want at most %d", declared, alloc, 2*FirstStep)
	}
}

// allocated is the fewest bytes fn allocated over a few runs: other goroutines may allocate
// meanwhile, but not in every run.
func allocated(fn func()) uint64 {
	best := ^uint64(0)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}
