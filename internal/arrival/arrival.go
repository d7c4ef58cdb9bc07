// Package arrival reads a length that a peer declared before sending the bytes, without
// trusting the declaration: memory is allocated as the bytes arrive, never up front. The
// api (request bodies) and cluster (member RPC frames) read this way, so that a length
// header costs nothing until the data behind it is actually sent.
package arrival

import (
	"errors"
	"io"
	"slices"
)

// FirstStep is the most ReadFull allocates before any byte has arrived. After it, the buffer
// doubles as it fills, up to the declared length, so a peer never makes the reader hold more
// than twice what it has sent (and the copies add up to less than the length).
const FirstStep = 64 << 10

// ErrNegative is returned by ReadFull for a negative length.
var ErrNegative = errors.New("negative length")

// ReadFull reads exactly n bytes from r, as io.ReadFull does: io.EOF if none arrived,
// io.ErrUnexpectedEOF if some but not all did. The result has length n; its capacity may be
// a little larger.
func ReadFull(r io.Reader, n int64) ([]byte, error) {
	if n < 0 {
		return nil, ErrNegative
	}
	buf := make([]byte, 0, min(n, FirstStep))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(n-int64(len(buf)), int64(len(buf)))))
		}
		// Never ask for more than n: r may hold the next message right behind this one.
		m, err := r.Read(buf[len(buf):int(min(int64(cap(buf)), n))])
		buf = buf[:len(buf)+m]
		if err == nil || int64(len(buf)) == n {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
