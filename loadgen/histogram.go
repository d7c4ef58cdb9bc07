package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets, after HdrHistogram: every duration
// below 256 ns has its own bucket, and above that each power of two is split into 128
// buckets, so that a reported quantile is at most 1/128 (0.8%) above the true one. It uses
// a fixed 57 KiB whatever the number of samples, and recording is a few instructions. It is
// not safe for concurrent use: each worker keeps its own, merged at the end.
type Histogram struct {
	counts        [numBuckets]uint64
	n             uint64
	sum, min, max int64
}

const (
	subBits    = 7
	subBuckets = 1 << subBits
	// numBuckets covers every int64: the largest has bits.Len64 = 63, shift 55.
	numBuckets = (63-subBits-1)*subBuckets + 2*subBuckets
)

// bucketOf maps v >= 0 to its bucket. Below 2*subBuckets the bucket is v itself; above, v
// is shifted to keep its top subBits+1 bits, m in [subBuckets, 2*subBuckets), and the
// bucket is shift*subBuckets + m, which continues the exact range without a gap.
func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return shift*subBuckets + int(v>>uint(shift))
}

// highestIn is the largest value that falls in bucket i.
func highestIn(i int) int64 {
	if i < 2*subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	m := uint64(i - shift*subBuckets)
	return int64((m+1)<<uint(shift) - 1)
}

// Record adds one duration; a negative one counts as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every sample of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest sample, exactly.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / int64(h.n))
}

// Quantile returns the smallest duration at or below which at least a fraction q of the
// samples lie (the nearest-rank definition), up to the bucket's resolution, and never more
// than Max. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(highestIn(i), h.max))
		}
	}
	return time.Duration(h.max)
}
