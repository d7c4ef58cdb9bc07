package api

import (
	"cmp"
	"embed"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/reason"
)

// The status page: an HTML page, a script and a style sheet served by the binary itself. The
// script draws the page from GET /v1/status and GET /ui/refusals, which reads the same TLS
// refusal counters that /metrics serves: the page holds no state of its own.
//
//go:embed ui/index.html ui/ui.js ui/ui.css
var uiFiles embed.FS

// uiCSP allows the page its own script, style sheet and requests, and nothing else: no
// inline script or style, no other origin, no framing, no forms.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiTypes are the content types of the page's files, by extension.
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// refusalMetric is the counter the page's TLS refusals come from (package mtls).
const refusalMetric = "mirrorkv_tls_handshake_refusals_total"

// refusalWindow is how far back the page counts TLS refusals.
const refusalWindow = time.Hour

// uiRoutes registers the status page; readonly access is enough, as for GET /v1/status.
// g is the registry /metrics serves.
func (s *Server) uiRoutes(g prometheus.Gatherer) {
	page := func(w http.ResponseWriter, r *http.Request) error { return serveUIFile(w, r, "index.html") }
	s.route("GET /ui", "ui", levelReadOnly, page)
	s.route("GET /ui/{$}", "ui", levelReadOnly, page)
	s.route("GET /ui/{file}", "ui", levelReadOnly, func(w http.ResponseWriter, r *http.Request) error {
		return serveUIFile(w, r, r.PathValue("file"))
	})
	ref := &refusals{gather: g}
	ref.samples = []refusalSample{{at: time.Now(), counts: ref.read()}}
	s.route("GET /ui/refusals", "ui-refusals", levelReadOnly, func(w http.ResponseWriter, r *http.Request) error {
		if err := checkQuery(r.URL.Query()); err != nil {
			return err
		}
		uiHeaders(w.Header(), "")
		s.writeJSON(w, http.StatusOK, ref.summary(time.Now()))
		return nil
	})
}

func uiHeaders(h http.Header, contentType string) {
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func serveUIFile(w http.ResponseWriter, r *http.Request, name string) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	ct, ok := uiTypes[path.Ext(name)]
	var b []byte
	var err error
	if ok {
		b, err = uiFiles.ReadFile("ui/" + name)
	}
	if !ok || err != nil {
		return &Error{Status: http.StatusNotFound, Msg: "no such file of the status page: " + r.URL.Path,
			Fix: "open /ui for the status page"}
	}
	uiHeaders(w.Header(), ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b) // a failed write means the client is gone
	return nil
}

// refusalKey is one series of the refusal counter.
type refusalKey struct {
	port string
	code int
}

// refusalSample is the refusal counters read at one time.
type refusalSample struct {
	at     time.Time
	counts map[refusalKey]float64
}

// refusals turns the cumulative refusal counters into counts over the last hour. It keeps a
// reading of the counters at most once a minute and answers with the difference from the
// newest reading at least an hour old (or the first, taken when the API started, when there
// is none), and says from when it counts.
type refusals struct {
	gather  prometheus.Gatherer
	mu      sync.Mutex
	samples []refusalSample // oldest first; samples[0] is the base of the window
}

// RefusalSummary is the body of GET /ui/refusals.
type RefusalSummary struct {
	Since    time.Time      `json:"since"` // counted from
	Until    time.Time      `json:"until"`
	Refusals []RefusalCount `json:"refusals"` // most first
}

// RefusalCount is the TLS handshakes one port refused for one reason.
type RefusalCount struct {
	Port  string `json:"port"`
	Code  int    `json:"code"`
	Text  string `json:"text"`
	Count int64  `json:"count"`
}

// read returns the counters now; a registry that fails to gather counts nothing.
func (f *refusals) read() map[refusalKey]float64 {
	counts := map[refusalKey]float64{}
	mfs, _ := f.gather.Gather() // a partial gather still holds the series it could read
	for _, mf := range mfs {
		if mf.GetName() != refusalMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var k refusalKey
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "port":
					k.port = l.GetValue()
				case "reason":
					k.code, _ = strconv.Atoi(l.GetValue())
				}
			}
			counts[k] += m.GetCounter().GetValue()
		}
	}
	return counts
}

func (f *refusals) summary(now time.Time) RefusalSummary {
	counts := f.read()
	f.mu.Lock()
	base := f.observe(now, counts)
	f.mu.Unlock()
	sum := RefusalSummary{Since: base.at, Until: now, Refusals: []RefusalCount{}}
	for k, v := range counts {
		if n := int64(v - base.counts[k]); n > 0 {
			sum.Refusals = append(sum.Refusals, RefusalCount{Port: k.port, Code: k.code, Text: reason.Code(k.code).Text(), Count: n})
		}
	}
	slices.SortFunc(sum.Refusals, func(a, b RefusalCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Code, b.Code))
	})
	return sum
}

// observe records counts read at now and returns the base of the window. Callers hold mu.
func (f *refusals) observe(now time.Time, counts map[refusalKey]float64) refusalSample {
	if last := f.samples[len(f.samples)-1]; now.Sub(last.at) >= time.Minute {
		f.samples = append(f.samples, refusalSample{at: now, counts: counts})
	}
	for len(f.samples) > 1 && !f.samples[1].at.After(now.Add(-refusalWindow)) {
		f.samples = f.samples[1:]
	}
	return f.samples[0]
}
