package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/loadgen"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Catch-up: a 3-member group is loaded with -catchup-mb of values, then a new non-voting
// member (a mirrorkv async member, an etcd learner) joins with an empty data directory;
// the figure is the data size over the time from starting its process to its being in
// sync.

// catchupResult is one system's catch-up.
type catchupResult struct {
	bytes   int64
	elapsed time.Duration
}

func (r catchupResult) mbps() float64 { return float64(r.bytes) / (1 << 20) / r.elapsed.Seconds() }

func catchupConfig(o *options) loadgen.Config {
	keys := max(o.CatchupMB<<20/o.CatchupVS, 1)
	return loadgen.Config{Clients: 16, Keys: keys, ValueSize: o.CatchupVS, KeyPrefix: "catchup/", Timeout: opTimeout}
}

func runCatchup(ctx context.Context, o *options, bins binaries) error {
	results := map[string]catchupResult{}
	var names []string
	for _, name := range o.Systems {
		var r catchupResult
		var err error
		switch name {
		case "mirrorkv":
			r, err = catchupMirrorkv(ctx, o, bins)
		case "etcd":
			r, err = catchupEtcd(ctx, o, bins)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("%s catch-up: %w", name, err)
		}
		fmt.Fprintf(o.Log, "%s: new member in sync with %d MiB after %s\n", name, r.bytes>>20, r.elapsed.Round(time.Millisecond))
		names = append(names, name)
		results[name] = r
	}
	printCatchup(o.Out, o, names, results)
	return nil
}

func catchupMirrorkv(ctx context.Context, o *options, bins binaries) (catchupResult, error) {
	dir, err := o.subdir("mirrorkv-catchup")
	if err != nil {
		return catchupResult{}, err
	}
	g, err := startMirrorkv(ctx, bins.mirrorkv, dir, 3, o.Log)
	if err != nil {
		return catchupResult{}, err
	}
	defer g.close()
	cfg := catchupConfig(o)
	fmt.Fprintf(o.Log, "mirrorkv: writing %d values of %d bytes\n", cfg.Keys, cfg.ValueSize)
	if err := loadgen.Fill(ctx, g.target(), cfg); err != nil {
		return catchupResult{}, err
	}
	m, err := newAsyncMember(g.g, dir, "m4")
	if err != nil {
		return catchupResult{}, err
	}
	start := time.Now()
	if err := g.g.Start(m, "--join", g.g.Members[0].MemberAddr, "--join-pin", g.g.Members[0].DN); err != nil {
		return catchupResult{}, err
	}
	g.g.Members = append(g.g.Members, m) // Close stops it too
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := waitListening(wctx, m.ClientAddr); err != nil {
		return catchupResult{}, err
	}
	if err := g.g.AddMember(wctx, m); err != nil {
		return catchupResult{}, err
	}
	err = poll(wctx, 50*time.Millisecond, "the new member to be in sync", func() (bool, error) {
		st, err := g.g.Admin().StatusOf(wctx, m.ClientURL)
		return err == nil && st.Role == wire.RoleAsync, err
	})
	return catchupResult{int64(cfg.Keys) * int64(cfg.ValueSize), time.Since(start)}, err
}

// newAsyncMember plans an async member the way localgroup plans its own: loopback ports,
// a member certificate from the group's replication CA, a data directory.
func newAsyncMember(g *localgroup.Group, dir, name string) (*localgroup.Member, error) {
	memberAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	clientAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	mdir := filepath.Join(dir, name)
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", mdir, err)
	}
	m := &localgroup.Member{
		Name: name, Host: "127.0.0.1", MemberAddr: memberAddr, ClientAddr: clientAddr,
		ClientURL: "https://" + clientAddr, Dir: filepath.Join(mdir, "data"),
		LogFile: filepath.Join(mdir, "member.log"), Async: true,
	}
	return m, g.PKI.IssueMember(m)
}

func waitListening(ctx context.Context, addr string) error {
	return poll(ctx, 50*time.Millisecond, addr+" to listen", func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
}

func catchupEtcd(ctx context.Context, o *options, bins binaries) (catchupResult, error) {
	dir, err := o.subdir("etcd-catchup")
	if err != nil {
		return catchupResult{}, err
	}
	c, err := startEtcd(ctx, bins.etcd, dir, 3, o.EtcdConns, o.Log)
	if err != nil {
		return catchupResult{}, err
	}
	defer c.close()
	cfg := catchupConfig(o)
	fmt.Fprintf(o.Log, "etcd: writing %d values of %d bytes\n", cfg.Keys, cfg.ValueSize)
	if err := loadgen.Fill(ctx, c.target(), cfg); err != nil {
		return catchupResult{}, err
	}
	m, err := c.plan("e4", 3)
	if err != nil {
		return catchupResult{}, err
	}
	if _, err := c.clients[0].MemberAddAsLearner(ctx, []string{m.peerURL}); err != nil {
		return catchupResult{}, fmt.Errorf("add etcd learner: %w", err)
	}
	leader, err := c.leader(ctx)
	if err != nil {
		return catchupResult{}, err
	}
	lst, err := c.clients[0].Status(ctx, leader.clientURL)
	if err != nil {
		return catchupResult{}, err
	}
	start := time.Now()
	if err := m.start(m.logFile, c.bin, c.args(m, "existing")...); err != nil {
		return catchupResult{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	err = poll(wctx, 50*time.Millisecond, "the etcd learner to catch up", func() (bool, error) {
		sctx, scancel := context.WithTimeout(wctx, time.Second)
		defer scancel()
		st, err := c.clients[0].Status(sctx, m.clientURL)
		return err == nil && st.RaftAppliedIndex >= lst.RaftAppliedIndex, err
	})
	return catchupResult{int64(cfg.Keys) * int64(cfg.ValueSize), time.Since(start)}, err
}

func printCatchup(w io.Writer, o *options, names []string, results map[string]catchupResult) {
	fmt.Fprintf(w, "\ncatch-up: a new non-voting member joins a 3-member group holding %d MiB in %d-byte values\n\n", o.CatchupMB, o.CatchupVS)
	fmt.Fprintln(w, "| system | data | time to in sync | rate |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, name := range names {
		r := results[name]
		fmt.Fprintf(w, "| %s | %d MiB | %s | %.1f MiB/s |\n", name, r.bytes>>20, r.elapsed.Round(time.Millisecond), r.mbps())
	}
}
