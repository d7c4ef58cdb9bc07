package mtls

import (
	"fmt"
	"sync"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the TLS layer refuses. One Metrics may serve several Sources; a nil
// *Metrics counts nothing.
type Metrics struct {
	refusals     *prometheus.CounterVec
	plaintext    *prometheus.CounterVec
	limited      *prometheus.CounterVec
	reloadErrors *prometheus.CounterVec
	expiry       *expiryCollector
	ca           *expiryCollector
	crl          *expiryCollector
}

// NewMetrics registers mirrorkv's TLS metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorkv_tls_handshake_refusals_total",
			Help: "Refused or failed TLS handshakes, by port and reason code.",
		}, []string{"port", "reason"}),
		plaintext: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorkv_tls_plaintext_attempts_total",
			Help: "Connections that sent plaintext to a TLS port, by port.",
		}, []string{"port"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorkv_tls_handshake_limited_total",
			Help: "Connections closed before their handshake because too many were in flight, by port and scope (global or source).",
		}, []string{"port", "scope"}),
		reloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorkv_tls_reload_errors_total",
			Help: "Refused reloads of TLS material (the old material stayed in force), by port (member or client) and reason.",
		}, []string{"port", "reason"}),
		expiry: newExpiryCollector("mirrorkv_tls_leaf_expiry_seconds",
			"Seconds until this member's current certificate expires, by port (member or client).", false),
		ca: newExpiryCollector("mirrorkv_tls_ca_expiry_seconds",
			"Seconds until each CA certificate of a port's trust bundle expires (negative once past), by port (member or client) and subject DN; every certificate a CA signed stops working with it.", true),
		crl: newExpiryCollector("mirrorkv_tls_crl_next_update_seconds",
			"Seconds until the CRL in force reaches its next update (negative once past it), by port (member or client); absent without a CRL.", false),
	}
	for _, c := range []prometheus.Collector{m.refusals, m.plaintext, m.limited, m.reloadErrors, m.expiry, m.ca, m.crl} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register TLS metrics: %w", err)
		}
	}
	return m, nil
}

func label(c reason.Code) string { return fmt.Sprintf("%d", int(c)) }

func (m *Metrics) refusal(port string, c reason.Code) {
	if m != nil {
		m.refusals.WithLabelValues(port, label(c)).Inc()
	}
}

func (m *Metrics) plaintextAttempt(port string) {
	if m != nil {
		m.plaintext.WithLabelValues(port).Inc()
	}
}

func (m *Metrics) handshakeLimited(port, scope string) {
	if m != nil {
		m.limited.WithLabelValues(port, scope).Inc()
	}
}

func (m *Metrics) reloadError(port string, c reason.Code) {
	if m != nil {
		m.reloadErrors.WithLabelValues(port, label(c)).Inc()
	}
}

func (m *Metrics) watchExpiry(port string, notAfter func() time.Time) {
	if m != nil {
		m.expiry.watch(port, one(notAfter))
	}
}

func (m *Metrics) watchCAs(port string, notAfter func() map[string]time.Time) {
	if m != nil {
		m.ca.watch(port, notAfter)
	}
}

func (m *Metrics) watchCRL(port string, nextUpdate func() time.Time) {
	if m != nil {
		m.crl.watch(port, one(nextUpdate))
	}
}

// one is a single deadline as the collector reads it: under no subject.
func one(f func() time.Time) func() map[string]time.Time {
	return func() map[string]time.Time { return map[string]time.Time{"": f()} }
}

// expiryCollector computes the time left at scrape time, so the gauge never goes stale.
// Each port gives its deadlines by subject DN; bySubject makes the subject a label.
type expiryCollector struct {
	desc      *prometheus.Desc
	bySubject bool
	mu        sync.Mutex
	ports     map[string]func() map[string]time.Time
}

func newExpiryCollector(name, help string, bySubject bool) *expiryCollector {
	labels := []string{"port"}
	if bySubject {
		labels = append(labels, "subject")
	}
	return &expiryCollector{desc: prometheus.NewDesc(name, help, labels, nil), bySubject: bySubject,
		ports: map[string]func() map[string]time.Time{}}
}

func (c *expiryCollector) watch(port string, deadlines func() map[string]time.Time) {
	c.mu.Lock()
	c.ports[port] = deadlines
	c.mu.Unlock()
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for port, f := range c.ports {
		for subject, t := range f() {
			if t.IsZero() {
				continue
			}
			labels := []string{port}
			if c.bySubject {
				labels = append(labels, subject)
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, time.Until(t).Seconds(), labels...)
		}
	}
}
