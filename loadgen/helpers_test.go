package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/pkitest"
)

// mtlsServer is an in-process HTTPS server that requires a client certificate from its
// client CA, as a member's client port does, and the material to reach it.
type mtlsServer struct {
	*httptest.Server
	serverCA *pkitest.CA
	clientCA *pkitest.CA
	client   *pkitest.Leaf
}

func startMTLS(tb testing.TB, h http.Handler) *mtlsServer {
	tb.Helper()
	s := &mtlsServer{serverCA: pkitest.NewCA(tb, "members"), clientCA: pkitest.NewCA(tb, "clients")}
	member := s.serverCA.Member("m1")
	s.client = s.clientCA.Client("bench")
	pool := x509.NewCertPool()
	pool.AddCert(s.clientCA.Cert)
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in tests
	s.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{member.Cert.Raw}, PrivateKey: member.Key, Leaf: member.Cert}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	s.StartTLS()
	tb.Cleanup(s.Close)
	return s
}

// newClient returns a mirrorkv client of s with the given client certificate (nil: the
// server's good one).
func (s *mtlsServer) newClient(tb testing.TB, leaf *pkitest.Leaf) *client.Client {
	tb.Helper()
	if leaf == nil {
		leaf = s.client
	}
	tlsCfg, err := client.LoadTLS(s.serverCA.CertPath, leaf.CertPath, leaf.KeyPath)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoints: []string{s.URL}, TLS: tlsCfg, Timeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
