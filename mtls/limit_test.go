package mtls

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
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
	src := sourceFor(t, PortMember, w.member, w.rca.CertPath, "", slog.New(log), func(c *Config) { c.Metrics = metrics })
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

// dialFrom dials addr from the loopback address from (for example 127.0.0.2).
func dialFrom(t testing.TB, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedAtOnce reports whether the listener closed c without a word.
func closedAtOnce(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// handshakeFrom completes a client-port handshake from the loopback address from.
func handshakeFrom(t testing.TB, w *world, from, addr string) error {
	t.Helper()
	c := dialFrom(t, from, addr)
	cert := tlsCert(t, w.client)
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNHTTP},
		Certificates: []tls.Certificate{cert}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return tc.HandshakeContext(ctx)
}

func TestListener_HandshakeCaps(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Fatalf("this test needs the loopback range 127.0.0.0/8, as Linux has it: %v", err)
	} else {
		ln.Close()
	}
	w := newWorld(t)
	t.Run("per source IP", func(t *testing.T) {
		metrics := newTestMetrics(t)
		src := sourceFor(t, PortClient, w.member, w.cca.CertPath, "", nil, func(c *Config) {
			c.Metrics, c.HandshakeTimeout = metrics, time.Minute // the silent ones hold their slots
			c.MaxHandshakesPerIP = 32
		})
		addr, accepted := listen(t, src.HTTPSListener)
		idle := make([]net.Conn, 40)
		for i := range idle {
			idle[i] = dialFrom(t, "127.0.0.1", addr) // and never send a ClientHello
		}
		waitCount(t, "limited{source}", metrics.limited.WithLabelValues("client", scopeSource), 8)
		var closed atomic.Int32
		var wg sync.WaitGroup
		for _, c := range idle {
			wg.Go(func() {
				if closedAtOnce(c) {
					closed.Add(1)
				}
			})
		}
		wg.Wait()
		if closed := closed.Load(); closed != 8 {
			t.Errorf("%d of 40 silent connections from one IP were closed at once, want 8 (the cap is 32)", closed)
		}
		if err := handshakeFrom(t, w, "127.0.0.2", addr); err != nil {
			t.Fatalf("a client from another IP could not handshake: %v", err)
		}
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("Accept did not return the other IP's connection")
		}
	})
	t.Run("global", func(t *testing.T) {
		metrics := newTestMetrics(t)
		src := sourceFor(t, PortClient, w.member, w.cca.CertPath, "", nil, func(c *Config) {
			c.Metrics, c.MaxHandshakes = metrics, 4
		})
		addr, _ := listen(t, src.HTTPSListener)
		for range 4 {
			dialFrom(t, "127.0.0.1", addr)
		}
		late := dialFrom(t, "127.0.0.2", addr)
		waitCount(t, "limited{global}", metrics.limited.WithLabelValues("client", scopeGlobal), 1)
		if !closedAtOnce(late) {
			t.Error("a connection over the global cap was not closed at once")
		}
	})
	t.Run("slot given back", func(t *testing.T) {
		src := sourceFor(t, PortClient, w.member, w.cca.CertPath, "", nil, func(c *Config) {
			c.MaxHandshakes, c.HandshakeTimeout = 1, 200*time.Millisecond
		})
		addr, _ := listen(t, src.HTTPSListener)
		dialFrom(t, "127.0.0.1", addr) // holds the only slot until its handshake times out
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := handshakeFrom(t, w, "127.0.0.1", addr)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the slot of a timed-out handshake was never given back: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestConfig_ValidateHandshakeCaps(t *testing.T) {
	cfg := Config{Port: PortClient, CertFile: os.DevNull, KeyFile: os.DevNull, CAFile: os.DevNull, MaxHandshakesPerIP: -1}
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted a negative handshake cap")
	}
}
