package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/loadgen"
)

// etcdCluster is an etcd cluster on 127.0.0.1 with mutual TLS on the peer and the client
// ports (certificates from makeCerts). etcd fsyncs its WAL on every commit by default, as
// mirrorkv does; nothing here turns that off.
type etcdCluster struct {
	bin, dir string
	certs    *certs
	members  []*etcdMember
	clients  []*clientv3.Client
	log      io.Writer
}

type etcdMember struct {
	process
	name, clientURL, peerURL, dataDir, logFile string
	cert, key                                  string
}

// startEtcd starts n members and waits until the cluster has a leader.
func startEtcd(ctx context.Context, bin, dir string, n, conns int, log io.Writer) (_ *etcdCluster, err error) {
	c := &etcdCluster{bin: bin, dir: dir, log: log}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.certs, err = makeCerts(filepath.Join(dir, "pki"), n+1); err != nil {
		return nil, err
	}
	for i := range n {
		if _, err := c.plan(fmt.Sprintf("e%d", i+1), i); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "starting a %d-member etcd cluster in %s\n", n, dir)
	for _, m := range c.members {
		if err := m.start(m.logFile, bin, c.args(m, "new")...); err != nil {
			return nil, err
		}
	}
	for range conns {
		cl, err := c.newClient(c.endpoints())
		if err != nil {
			return nil, err
		}
		c.clients = append(c.clients, cl)
	}
	return c, c.waitHealthy(ctx)
}

// plan adds a member with fresh ports and the i-th certificate, without starting it.
func (c *etcdCluster) plan(name string, i int) (*etcdMember, error) {
	caddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	paddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	m := &etcdMember{
		name: name, clientURL: "https://" + caddr, peerURL: "https://" + paddr,
		dataDir: filepath.Join(c.dir, name), logFile: filepath.Join(c.dir, name+".log"),
		cert: c.certs.ServerCert[i], key: c.certs.ServerKeys[i],
	}
	c.members = append(c.members, m)
	return m, nil
}

func (c *etcdCluster) args(m *etcdMember, state string) []string {
	var initial []string
	for _, o := range c.members {
		initial = append(initial, o.name+"="+o.peerURL)
	}
	return []string{
		"--name", m.name, "--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", state,
		"--initial-cluster-token", "mirrorkv-bench",
		// Clients: TLS with a required client certificate from the client CA.
		"--cert-file", m.cert, "--key-file", m.key, "--client-cert-auth", "--trusted-ca-file", c.certs.ClientCA,
		// Peers: mutual TLS with the member certificates.
		"--peer-cert-file", m.cert, "--peer-key-file", m.key, "--peer-client-cert-auth", "--peer-trusted-ca-file", c.certs.ServerCA,
		"--log-level", "warn",
	}
}

func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

func (c *etcdCluster) newClient(eps []string) (*clientv3.Client, error) {
	tlsCfg, err := client.LoadTLS(c.certs.ServerCA, c.certs.ClientCert, c.certs.ClientKey)
	if err != nil {
		return nil, err
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cl, nil
}

// waitHealthy waits until every running member answers Status and names the same leader.
func (c *etcdCluster) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return poll(ctx, 100*time.Millisecond, "etcd cluster to have a leader", func() (bool, error) {
		var leader uint64
		for _, m := range c.members {
			if !m.running() {
				return false, fmt.Errorf("etcd %s exited; see %s", m.name, m.logFile)
			}
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			st, err := c.clients[0].Status(sctx, m.clientURL)
			scancel()
			if err != nil {
				return false, err
			}
			if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				return false, nil
			}
			leader = st.Leader
		}
		return true, nil
	})
}

// leader returns the member that is leader now.
func (c *etcdCluster) leader(ctx context.Context) (*etcdMember, error) {
	for _, m := range c.members {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.clients[0].Status(sctx, m.clientURL)
		cancel()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m, nil
		}
	}
	return nil, errors.New("no etcd member reports itself leader")
}

func (c *etcdCluster) close() error {
	for _, cl := range c.clients {
		cl.Close()
	}
	var errs []error
	for _, m := range c.members {
		if err := m.stop(syscall.SIGTERM, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop etcd %s: %w", m.name, err))
		}
	}
	return errors.Join(errs...)
}

func (c *etcdCluster) target() loadgen.Target { return &etcdTarget{clients: c.clients} }

// etcdTarget runs operations with clientv3, spreading them over a few clients (one gRPC
// connection each). A write is a Put, a read a linearizable Get, a stale read a
// serializable Get, which any member answers from its own copy.
type etcdTarget struct {
	clients []*clientv3.Client
	next    atomic.Uint32
}

func (t *etcdTarget) Do(ctx context.Context, op loadgen.Op) error {
	cl := t.clients[int(t.next.Add(1))%len(t.clients)]
	switch op.Kind {
	case loadgen.Write:
		_, err := cl.Put(ctx, op.Key, string(op.Value))
		return etcdErr(err)
	case loadgen.Read, loadgen.StaleRead:
		var opts []clientv3.OpOption
		if op.Kind == loadgen.StaleRead {
			opts = append(opts, clientv3.WithSerializable())
		}
		resp, err := cl.Get(ctx, op.Key, opts...)
		if err != nil {
			return etcdErr(err)
		}
		if len(resp.Kvs) == 0 {
			return &loadgen.KindError{Kind: loadgen.NotFound, Err: fmt.Errorf("get %q: not found", op.Key)}
		}
	}
	return nil
}

// etcdErr gives a gRPC error from etcd the kind that the same failure has in mirrorkv.
func etcdErr(err error) error {
	if err == nil {
		return nil
	}
	var code codes.Code
	if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	if ee, ok := errors.AsType[rpctypes.EtcdError](err); ok {
		code = ee.Code()
	}
	msg := err.Error()
	kind := loadgen.Other
	switch {
	case code == codes.OK:
		return err // not a gRPC status: loadgen.Classify decides
	case code == codes.DeadlineExceeded:
		kind = loadgen.Timeout
	case code == codes.Unavailable && strings.Contains(msg, "connection refused"):
		kind = loadgen.Refused
	case code == codes.Unavailable && strings.Contains(msg, "handshake"):
		kind = loadgen.TLS
	case code == codes.Unavailable && (strings.Contains(msg, "EOF") || strings.Contains(msg, "reset")):
		kind = loadgen.Closed
	case code == codes.Unavailable, code == codes.Internal, code == codes.Unknown:
		kind = loadgen.Server // no leader, leader changed, timeouts inside the server
	case code == codes.FailedPrecondition:
		kind = loadgen.Conflict
	default:
		return err // context errors and the rest: loadgen.Classify decides
	}
	return &loadgen.KindError{Kind: kind, Err: err}
}
