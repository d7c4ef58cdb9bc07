package mtls

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mirrorkv/mirrorkv/reason"
)

// countLog is a slog handler that counts records by their reason attribute.
type countLog struct {
	mu sync.Mutex
	n  map[reason.Code]int
}

func newCountLog() *countLog { return &countLog{n: map[reason.Code]int{}} }

func (h *countLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *countLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countLog) WithGroup(string) slog.Handler            { return h }
func (h *countLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			h.mu.Lock()
			h.n[reason.Code(a.Value.Int64())]++
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *countLog) count(c reason.Code) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[c]
}

func newTestMetrics(t testing.TB) *Metrics {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func value(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitCount polls c until it reaches want; counters are bumped by the listener's goroutines.
func waitCount(t testing.TB, what string, c prometheus.Counter, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for value(t, c) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(t, c); got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestListener_PlaintextLogRateLimited(t *testing.T) {
	w := newWorld(t)
	log, metrics := newCountLog(), newTestMetrics(t)
	src := sourceFor(t, RoleMember, w.member, w.rca.CertPath, "", slog.New(log), func(c *Config) { c.Metrics = metrics })
	addr, _ := listen(t, src.Listen)
	const conns = 300
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.WriteString(c, "\x00\x01\x02raft")
		_, _ = io.Copy(io.Discard, c) // until the listener drops it
		c.Close()
	}
	waitCount(t, "plaintext attempts", metrics.plaintext.WithLabelValues("member"), conns)
	if n := log.count(reason.Plaintext); n < 1 || n > 3 {
		t.Errorf("%d plaintext connections from one host logged %d lines, want 1 to 3", conns, n)
	}
}
