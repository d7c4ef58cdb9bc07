package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// frame is a length header followed by body, as a peer would send it.
func frame(length uint32, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, length), body...)
}

func TestReadFrame(t *testing.T) {
	var good bytes.Buffer
	w := bufio.NewWriter(&good)
	if err := writeFrame(w, methodApply, []byte("payload")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		limit   int
		kind    byte
		payload string
		wantErr error
	}{
		{"written by writeFrame", good.Bytes(), maxFrame, methodApply, "payload", nil},
		{"kind only", frame(1, []byte{respOK}), maxFrame, respOK, "", nil},
		{"closed between frames", nil, maxFrame, 0, "", io.EOF},
		{"header cut short", []byte{0, 0}, maxFrame, 0, "", io.ErrUnexpectedEOF},
		{"empty frame", frame(0, nil), maxFrame, 0, "", ErrBadFrame},
		{"over the limit", frame(11, make([]byte, 11)), 10, 0, "", ErrFrameTooLarge},
		{"over maxFrame", frame(maxFrame+1, nil), maxFrame, 0, "", ErrFrameTooLarge},
		{"body never sent", frame(100, nil), maxFrame, 0, "", io.ErrUnexpectedEOF},
		{"body cut short", frame(100, []byte{methodApply, 'x'}), maxFrame, 0, "", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, payload, err := readFrame(bufio.NewReader(bytes.NewReader(tc.in)), tc.limit)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (kind != tc.kind || string(payload) != tc.payload) {
				t.Fatalf("frame = %d %q, want %d %q", kind, payload, tc.kind, tc.payload)
			}
		})
	}
}

// TestReadFrame_Unsent: a peer that declares the largest frame and sends a few bytes must
// not make the member allocate the declared length.
func TestReadFrame_Unsent(t *testing.T) {
	in := frame(maxFrame, []byte{methodApply, 1, 2, 3})
	best := ^uint64(0)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := readFrame(bufio.NewReader(bytes.NewReader(in)), maxFrame)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want %v", err, io.ErrUnexpectedEOF)
		}
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	if best > 1<<20 {
		t.Errorf("a frame declaring %d bytes with 4 sent allocated %d bytes; want under 1 MiB", maxFrame, best)
	}
}

// FuzzReadFrame feeds a member's frame reader what a peer might send. The seeds run in every
// `go test`; `go test -fuzz FuzzReadFrame ./cluster` explores further.
func FuzzReadFrame(f *testing.F) {
	var good bytes.Buffer
	w := bufio.NewWriter(&good)
	_ = writeFrame(w, methodApply, []byte("payload"))
	_ = writeFrame(w, respErr, nil)
	f.Add(good.Bytes())
	f.Add([]byte{})
	f.Add(frame(0, nil))
	f.Add(frame(maxFrame, []byte{methodApply}))
	f.Add(frame(maxFrame+1, nil))
	f.Add(frame(^uint32(0), []byte{1, 2, 3}))
	f.Add(frame(3, []byte{methodMembers, 0, 0, 0, 0, 9}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		read := 0
		for {
			kind, payload, err := readFrame(r, maxFrame)
			if err != nil {
				if errors.Is(err, io.EOF) && read != len(in) {
					t.Fatalf("io.EOF after %d of %d bytes: only a clean end between frames is io.EOF", read, len(in))
				}
				return
			}
			read += frameHeader + len(payload)
			if read > len(in) {
				t.Fatalf("frames of %d bytes out of %d sent", read, len(in))
			}
			// What was read must be what the peer sent, byte for byte.
			if in[read-len(payload)-1] != kind || !bytes.Equal(in[read-len(payload):read], payload) {
				t.Fatalf("frame ending at %d does not match the input", read)
			}
		}
	})
}
