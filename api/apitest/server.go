package apitest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
)

// Server is the API over a fake group, served on an httptest TLS server that requires client
// certificates from PKI.
type Server struct {
	URL   string
	PKI   *PKI
	Group *Group
	API   *api.Server
	HTTP  *httptest.Server

	conns atomic.Int64
}

// Conns reports how many connections clients have opened to the server.
func (s *Server) Conns() int64 { return s.conns.Load() }

// Start serves the API of a fake group named after cfg.Node (default "m1"); pki may be nil
// for a new one. The server stops at the end of the test.
func Start(tb testing.TB, cfg api.Config, pki *PKI) *Server {
	tb.Helper()
	if cfg.Node == "" {
		cfg.Node = "m1"
	}
	if pki == nil {
		pki = NewPKI(tb)
	}
	g := NewGroup(cfg.Node)
	a := api.New(cfg, g, g, prometheus.NewRegistry(), nil)
	hs := httptest.NewUnstartedServer(a.Handler())
	s := &Server{PKI: pki, Group: g, API: a, HTTP: hs}
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	hs.TLS = pki.ServerTLS()
	hs.StartTLS()
	tb.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}
