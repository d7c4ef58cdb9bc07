package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's request counter and latency histogram, labelled by route (a fixed
// name per route, never the raw path, so that keys cannot blow up the label space).
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorkv_http_requests_total",
			Help: "HTTP API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mirrorkv_http_request_duration_seconds",
			Help:    "HTTP API request latency by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 µs to about 3 s
		}, []string{"route", "method"}),
	}
	m.requests = register(reg, m.requests)
	m.latency = register(reg, m.latency)
	return m
}

// register adds c to reg, or returns the collector already there: two API servers on one
// registry (tests, or a restart within a process) share their metrics instead of failing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// routeMetrics is the metrics of one route, with its label already bound.
type routeMetrics struct {
	m     *metrics
	label string
}

func (m *metrics) route(label string) routeMetrics { return routeMetrics{m: m, label: label} }

func (rm routeMetrics) observe(method string, code int, d time.Duration) {
	method = methodLabel(method)
	rm.m.requests.WithLabelValues(rm.label, method, codeLabel(code)).Inc()
	rm.m.latency.WithLabelValues(rm.label, method).Observe(d.Seconds())
}

// methodLabel folds unknown methods into one label value: the method is client input.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead:
		return m
	}
	return "other"
}

// codeLabel avoids an allocation for the common codes.
func codeLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 404:
		return "404"
	case 412:
		return "412"
	}
	return strconv.Itoa(code)
}
