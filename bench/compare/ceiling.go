package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/loadgen"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
)

// ceiling is loadgen.NopHandler behind the very TLS a member's client port uses
// (mtls.Source with PortClient: the member certificate, the client CA, its CRL,
// HTTPSListener), served from this process, and driven through the mirrorkv client. It
// answers without doing any work, so its throughput is the most this machine, the client
// and TLS allow at a given concurrency.
type ceiling struct {
	srv    *http.Server
	client *client.Client
	done   chan error
}

func startCeiling(dir string, valueSize int) (*ceiling, error) {
	c, err := makeCerts(dir, 1)
	if err != nil {
		return nil, err
	}
	src, err := mtls.NewSource(mtls.Config{
		Port: mtls.PortClient, CertFile: c.ServerCert[0], KeyFile: c.ServerKeys[0],
		CAFile: c.ClientCA, CRLFile: filepath.Join(filepath.Dir(c.ClientCA), pki.CRLFile),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("ceiling credentials: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ceiling listen: %w", err)
	}
	s := &ceiling{srv: &http.Server{Handler: loadgen.NopHandler(valueSize), ReadHeaderTimeout: 10 * time.Second}, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(src.HTTPSListener(ln)) }()
	tlsCfg, err := client.LoadTLS(c.ServerCA, c.ClientCert, c.ClientKey)
	if err != nil {
		s.close()
		return nil, err
	}
	if s.client, err = client.New(client.Config{Endpoints: []string{ln.Addr().String()}, TLS: tlsCfg}); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *ceiling) target() loadgen.Target { return loadgen.ClientTarget{Client: s.client} }

func (s *ceiling) close() error {
	if s.client != nil {
		s.client.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
