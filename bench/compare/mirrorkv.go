package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/loadgen"
	"github.com/mirrorkv/mirrorkv/pki"
)

// mirrorkvGroup is a local group formed by localgroup (members as real `mirrorkv serve`
// processes on 127.0.0.1, mutual TLS on both ports, raft log fsynced on every append by the
// default wal log store) and a client with a read-write certificate.
type mirrorkvGroup struct {
	g      *localgroup.Group
	client *client.Client
}

func startMirrorkv(ctx context.Context, bin, dir string, failover int, log io.Writer) (*mirrorkvGroup, error) {
	fmt.Fprintf(log, "starting a %d-member mirrorkv group in %s\n", failover, dir)
	g, err := localgroup.Create(ctx, localgroup.Options{Binary: bin, Dir: dir, Failover: failover, Progress: log})
	if err != nil {
		return nil, fmt.Errorf("start mirrorkv group: %w", err)
	}
	m := &mirrorkvGroup{g: g}
	cert, key, err := g.PKI.IssueClient("bench", pki.AccessReadWrite)
	if err != nil {
		g.Close()
		return nil, err
	}
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, cert, key)
	if err != nil {
		g.Close()
		return nil, err
	}
	if m.client, err = client.New(client.Config{Endpoints: g.Endpoints(), TLS: tlsCfg}); err != nil {
		g.Close()
		return nil, err
	}
	return m, nil
}

func (m *mirrorkvGroup) target() loadgen.Target { return loadgen.ClientTarget{Client: m.client} }

// primary returns the member that is primary now, by asking each member in turn.
func (m *mirrorkvGroup) primary(ctx context.Context) (*localgroup.Member, error) {
	for _, mem := range m.g.Members {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := m.g.Admin().StatusOf(sctx, mem.ClientURL)
		cancel()
		if err != nil || st.Primary == "" {
			continue
		}
		for _, p := range m.g.Members {
			if p.Name == st.Primary {
				return p, nil
			}
		}
	}
	return nil, errors.New("no mirrorkv member names a primary")
}

func (m *mirrorkvGroup) close() error {
	m.client.Close()
	return m.g.Close()
}
