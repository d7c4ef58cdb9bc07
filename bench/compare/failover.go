package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mirrorkv/mirrorkv/loadgen"
)

// Failover: writers keep writing while the primary (mirrorkv) or the leader (etcd) is
// killed with SIGKILL; the figure is the longest time during which no write succeeded,
// the median over -runs kills. Each run starts a fresh 3-member group, so that every kill
// meets the same state (and no run depends on a killed member coming back: see
// docs/benchmarks.md on restarting a killed mirrorkv primary).
const (
	failoverSettle    = 2 * time.Second // load before the kill
	failoverOpTimeout = 5 * time.Second
)

// killable is a running system whose leader can be killed.
type killable struct {
	name       string
	target     loadgen.Target
	killLeader func(context.Context) error
	close      func() error
}

func startKillable(ctx context.Context, o *options, bins binaries, name string) (*killable, error) {
	dir, err := o.subdir(name + "-failover")
	if err != nil {
		return nil, err
	}
	switch name {
	case "mirrorkv":
		g, err := startMirrorkv(ctx, bins.mirrorkv, dir, 3, o.Log)
		if err != nil {
			return nil, err
		}
		kill := func(ctx context.Context) error {
			p, err := g.primary(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Log, "killing mirrorkv primary %s\n", p.Name)
			return p.Kill()
		}
		return &killable{name, g.target(), kill, g.close}, nil
	case "etcd":
		c, err := startEtcd(ctx, bins.etcd, dir, 3, o.EtcdConns, o.Log)
		if err != nil {
			return nil, err
		}
		kill := func(ctx context.Context) error {
			m, err := c.leader(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Log, "killing etcd leader %s\n", m.name)
			return m.stop(syscall.SIGKILL, 0)
		}
		return &killable{name, c.target(), kill, c.close}, nil
	}
	return nil, fmt.Errorf("no failover for %q", name)
}

// timeline is a target that notes when each successful operation ended.
type timeline struct {
	inner loadgen.Target
	start time.Time
	mu    sync.Mutex
	ok    []time.Duration
}

func (t *timeline) Do(ctx context.Context, op loadgen.Op) error {
	err := t.inner.Do(ctx, op)
	if err == nil {
		at := time.Since(t.start)
		t.mu.Lock()
		t.ok = append(t.ok, at)
		t.mu.Unlock()
	}
	return err
}

// longestGap is the longest time without a success from the last success before at to
// end, the end of the run; censored says that no write succeeded after at.
func (t *timeline) longestGap(at, end time.Duration) (gap time.Duration, censored bool) {
	t.mu.Lock()
	ok := slices.Clone(t.ok)
	t.mu.Unlock()
	slices.Sort(ok)
	i := sort.Search(len(ok), func(i int) bool { return ok[i] > at })
	prev := time.Duration(0)
	if i > 0 {
		prev = ok[i-1]
	}
	if i == len(ok) {
		return end - prev, true
	}
	for _, d := range ok[i:] {
		gap = max(gap, d-prev)
		prev = d
	}
	return gap, false
}

// failoverRun is one kill under load, on a fresh group.
func failoverRun(ctx context.Context, o *options, bins binaries, name string) (_ time.Duration, _ *loadgen.Result, err error) {
	k, err := startKillable(ctx, o, bins, name)
	if err != nil {
		return 0, nil, err
	}
	defer func() {
		if cerr := k.close(); cerr != nil && err == nil {
			err = fmt.Errorf("stop %s: %w", name, cerr)
		}
	}()
	tl := &timeline{inner: k.target, start: time.Now()}
	cfg := loadgen.Config{Clients: o.FoClients, Keys: tableKeys, ValueSize: o.ValueSize, Timeout: failoverOpTimeout, Duration: failoverSettle + o.FoWindow}
	type outcome struct {
		res *loadgen.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := loadgen.Run(ctx, tl, cfg)
		done <- outcome{res, err}
	}()
	time.Sleep(failoverSettle)
	at := time.Since(tl.start)
	killErr := k.killLeader(ctx)
	out := <-done
	if killErr != nil {
		return 0, nil, killErr
	}
	if out.err != nil {
		return 0, nil, out.err
	}
	gap, censored := tl.longestGap(at, time.Since(tl.start))
	if censored {
		fmt.Fprintf(o.Log, "%s: no write succeeded in the %s after the kill\n", k.name, o.FoWindow)
	}
	return gap, out.res, nil
}

func runFailover(ctx context.Context, o *options, bins binaries) error {
	gaps := map[string][]time.Duration{}
	var names []string
	for _, name := range o.Systems {
		if name == "ceiling" {
			continue
		}
		names = append(names, name)
		for run := range o.Runs {
			gap, res, err := failoverRun(ctx, o, bins, name)
			if err != nil {
				return fmt.Errorf("%s failover run %d: %w", name, run+1, err)
			}
			fmt.Fprintf(o.Log, "%s failover run %d: longest gap %s; %.0f writes/s; errors: %s\n", name, run+1, gap.Round(time.Millisecond), res.OpsPerSec, errorKinds(res))
			gaps[name] = append(gaps[name], gap)
		}
	}
	printFailover(o.Out, o, names, gaps)
	return nil
}

func printFailover(w io.Writer, o *options, names []string, gaps map[string][]time.Duration) {
	fmt.Fprintf(w, "\nfailover: %d writers, SIGKILL of the primary/leader %s into the load; longest time without a successful write\n\n", o.FoClients, failoverSettle)
	fmt.Fprintln(w, "| system | runs | median gap | min | max | every run |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, name := range names {
		g := slices.Clone(gaps[name])
		slices.Sort(g)
		var all []string
		for _, d := range gaps[name] {
			all = append(all, ms(d))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", name, len(g), ms(g[len(g)/2]), ms(g[0]), ms(g[len(g)-1]), strings.Join(all, ", "))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }
