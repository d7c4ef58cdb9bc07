package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestHistogram_Quantile(t *testing.T) {
	// 1 µs … 10 ms, each once, shuffled: the q-quantile is q × 10 ms.
	const n = 10000
	h := new(Histogram)
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		h.Record(time.Duration(i+1) * time.Microsecond)
	}
	for _, tc := range []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"p50", 0.50, 5 * time.Millisecond},
		{"p90", 0.90, 9 * time.Millisecond},
		{"p99", 0.99, 9900 * time.Microsecond},
		{"p99.9", 0.999, 9990 * time.Microsecond},
		{"p100", 1, 10 * time.Millisecond},
		{"p0", 0, time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.Quantile(tc.q)
			// At most one bucket (1/128) above the true value, never below.
			if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/subBuckets) {
				t.Errorf("Quantile(%g) = %s, want %s (+0.8%%)", tc.q, got, tc.want)
			}
		})
	}
	if h.Max() != 10*time.Millisecond || h.Min() != time.Microsecond || h.Count() != n {
		t.Errorf("max %s min %s count %d, want 10ms 1µs %d", h.Max(), h.Min(), h.Count(), n)
	}
	if want := 5000500 * time.Nanosecond; h.Mean() != want {
		t.Errorf("Mean = %s, want %s", h.Mean(), want)
	}
}

func TestHistogram_Exact(t *testing.T) {
	// Below 256 ns every value has its own bucket.
	h := new(Histogram)
	for v := range 200 {
		h.Record(time.Duration(v + 1))
	}
	if got := h.Quantile(0.5); got != 100 {
		t.Errorf("p50 of 1..200 ns = %d, want 100", got)
	}
	if got := h.Quantile(0.99); got != 198 {
		t.Errorf("p99 of 1..200 ns = %d, want 198", got)
	}
}

func TestHistogram_Buckets(t *testing.T) {
	// Buckets tile the int64 range: each value lies in its bucket, and bucket i+1 starts
	// right after bucket i ends.
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1 << 20, 1<<20 + 12345, 1<<63 - 1} {
		i := bucketOf(v)
		if i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, beyond %d buckets", v, i, numBuckets)
		}
		if hi := uint64(highestIn(i)); v > hi {
			t.Errorf("bucketOf(%d) = %d whose highest value is %d", v, i, hi)
		}
		if i > 0 && uint64(highestIn(i-1)) >= v {
			t.Errorf("%d is in bucket %d but bucket %d reaches %d", v, i, i-1, highestIn(i-1))
		}
	}
	for i := 1; i < numBuckets; i++ {
		if bucketOf(uint64(highestIn(i-1))+1) != i {
			t.Fatalf("bucket %d does not start right after bucket %d", i, i-1)
		}
	}
}

func TestHistogram_Merge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if Summarize(&a) != Summarize(&all) || a.Min() != all.Min() || a.Count() != all.Count() {
		t.Errorf("merged %+v, want %+v", Summarize(&a), Summarize(&all))
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("an empty histogram reports non-zero")
	}
}
