package api

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/reason"
)

// TestRefusals_Summary counts refusals over the last hour from the cumulative counter, with a
// fixed clock.
func TestRefusals_Summary(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: refusalMetric, Help: "test"}, []string{"port", "reason"})
	reg.MustRegister(c)
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &refusals{gather: reg}
	f.samples = []refusalSample{{at: start, counts: f.read()}}
	noCert := c.WithLabelValues("client", "109")

	noCert.Add(3)
	sum := f.summary(start.Add(30 * time.Minute))
	if !sum.Since.Equal(start) || len(sum.Refusals) != 1 || sum.Refusals[0].Count != 3 ||
		sum.Refusals[0].Text != reason.NoCertificate.Text() || sum.Refusals[0].Port != "client" {
		t.Fatalf("after 30 min: %+v", sum)
	}
	noCert.Add(2)
	c.WithLabelValues("member", "101").Add(7)
	sum = f.summary(start.Add(70 * time.Minute))
	// No reading is an hour old yet but the first: it is still the base.
	if !sum.Since.Equal(start) || len(sum.Refusals) != 2 || sum.Refusals[0].Count != 7 || sum.Refusals[1].Count != 5 {
		t.Fatalf("after 70 min: %+v", sum)
	}
	// The reading at 30 min is now the newest an hour old: the 3 refusals before it drop out.
	sum = f.summary(start.Add(95 * time.Minute))
	if want := start.Add(30 * time.Minute); !sum.Since.Equal(want) {
		t.Fatalf("after 95 min: since %s, want %s", sum.Since, want)
	}
	if len(sum.Refusals) != 2 || sum.Refusals[0].Count != 7 || sum.Refusals[1].Count != 2 {
		t.Fatalf("after 95 min: %+v", sum)
	}
	sum = f.summary(start.Add(200 * time.Minute))
	if want := start.Add(95 * time.Minute); !sum.Since.Equal(want) || len(sum.Refusals) != 0 {
		t.Fatalf("after 200 min: since %s, want %s; %+v", sum.Since, want, sum.Refusals)
	}
}
