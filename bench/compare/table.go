package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/loadgen"
)

// workload is one row of the table.
type workload struct {
	name    string
	mix     loadgen.Mix
	clients int
}

// The workloads of the issue: writes (of -value-size bytes, 256 by default) at 1, 16 and 64
// clients, and at 64 clients linearizable reads, stale reads and a 90/10 read/write mix, over
// 1000 keys.
var workloads = []workload{
	{"write", loadgen.WriteOnly, 1},
	{"write", loadgen.WriteOnly, 16},
	{"write", loadgen.WriteOnly, 64},
	{"linearizable read", loadgen.ReadOnly, 64},
	{"stale read", loadgen.StaleReadOnly, 64},
	{"90/10 read/write", loadgen.Mix{Read: 0.9, Write: 0.1}, 64},
}

// label names w in the table: writes with their value size.
func (w workload) label(valueSize int) string {
	if w.mix == loadgen.WriteOnly {
		return fmt.Sprintf("write %d B", valueSize)
	}
	return w.name
}

const (
	tableKeys = 1000
	// opTimeout bounds each operation for every system alike (the mirrorkv client's own
	// default).
	opTimeout = 10 * time.Second
)

// system is a running system under test.
type system struct {
	name   string
	target loadgen.Target
	close  func() error
}

// startSystem starts the named system in a new directory under the work directory.
func startSystem(ctx context.Context, o *options, bins binaries, name string) (*system, error) {
	dir, err := o.subdir(name)
	if err != nil {
		return nil, err
	}
	switch name {
	case "ceiling":
		c, err := startCeiling(dir, o.ValueSize)
		if err != nil {
			return nil, err
		}
		return &system{name, c.target(), c.close}, nil
	case "mirrorkv":
		g, err := startMirrorkv(ctx, bins.mirrorkv, dir, 3, o.Log)
		if err != nil {
			return nil, err
		}
		return &system{name, g.target(), g.close}, nil
	case "etcd":
		c, err := startEtcd(ctx, bins.etcd, dir, 3, o.EtcdConns, o.Log)
		if err != nil {
			return nil, err
		}
		return &system{name, c.target(), c.close}, nil
	}
	return nil, fmt.Errorf("unknown system %q", name)
}

// runTable measures every workload on each system in turn, one system running at a time
// so that they do not share the CPUs, -rounds times over, and prints the medians.
func runTable(ctx context.Context, o *options, bins binaries) error {
	rounds := map[string][][]*loadgen.Result{} // system → workload → round
	for round := range o.Rounds {
		for _, name := range o.Systems {
			fmt.Fprintf(o.Log, "round %d of %d: %s\n", round+1, o.Rounds, name)
			sys, err := startSystem(ctx, o, bins, name)
			if err != nil {
				return err
			}
			res, err := runWorkloads(ctx, o, sys)
			if cerr := sys.close(); cerr != nil && err == nil {
				err = fmt.Errorf("stop %s: %w", name, cerr)
			}
			if err != nil {
				return err
			}
			if rounds[name] == nil {
				rounds[name] = make([][]*loadgen.Result, len(workloads))
			}
			for i, r := range res {
				rounds[name][i] = append(rounds[name][i], r)
			}
		}
	}
	printTable(o.Out, o, rounds)
	return nil
}

// median is the round with the median throughput; its p99 goes with it. With an even
// number of rounds it is the upper of the middle two.
func median(rs []*loadgen.Result) *loadgen.Result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b *loadgen.Result) int { return cmp.Compare(a.OpsPerSec, b.OpsPerSec) })
	return s[len(s)/2]
}

func runWorkloads(ctx context.Context, o *options, sys *system) ([]*loadgen.Result, error) {
	var out []*loadgen.Result
	filled := false
	for _, w := range workloads {
		cfg := loadgen.Config{Clients: w.clients, Mix: w.mix, Keys: tableKeys, ValueSize: o.ValueSize, Timeout: opTimeout}
		if w.mix.Reads() && !filled {
			if err := loadgen.Fill(ctx, sys.target, cfg); err != nil {
				return nil, fmt.Errorf("%s: %w", sys.name, err)
			}
			filled = true
		}
		if o.Warmup > 0 {
			cfg.Duration = o.Warmup
			if _, err := loadgen.Run(ctx, sys.target, cfg); err != nil {
				return nil, err
			}
		}
		cfg.Duration = o.Duration
		res, err := loadgen.Run(ctx, sys.target, cfg)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Fprintf(o.Log, "%-9s %-18s %2d clients: %9.0f ops/s  p99 %-10s errors: %s\n",
			sys.name, w.label(o.ValueSize), w.clients, res.OpsPerSec, res.Latency.P99.Round(time.Microsecond), errorKinds(res))
		out = append(out, res)
	}
	return out, nil
}

// printTable prints one Markdown row per workload: ops/s and p99 of each system, mirrorkv
// against etcd, and mirrorkv as a fraction of the ceiling, from the median round.
func printTable(w io.Writer, o *options, rounds map[string][][]*loadgen.Result) {
	results := map[string][]*loadgen.Result{}
	for name, byWorkload := range rounds {
		for _, rs := range byWorkload {
			results[name] = append(results[name], median(rs))
		}
	}
	fmt.Fprintf(w, "\n%s per workload after %s of warm-up, median of %d round(s); p99 in ms; %d keys, %d-byte values\n\n",
		o.Duration, o.Warmup, o.Rounds, tableKeys, o.ValueSize)
	head := []string{"workload", "clients"}
	for _, s := range o.Systems {
		head = append(head, s+" ops/s", s+" p99")
	}
	if o.wants("mirrorkv") && o.wants("etcd") {
		head = append(head, "mirrorkv/etcd")
	}
	if o.wants("mirrorkv") && o.wants("ceiling") {
		head = append(head, "mirrorkv/ceiling")
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for i, wl := range workloads {
		row := []string{wl.label(o.ValueSize), fmt.Sprint(wl.clients)}
		for _, s := range o.Systems {
			r := results[s][i]
			row = append(row, fmt.Sprintf("%.0f", r.OpsPerSec), fmt.Sprintf("%.2f", float64(r.Latency.P99)/1e6))
		}
		if o.wants("mirrorkv") && o.wants("etcd") {
			row = append(row, fmt.Sprintf("%.2f", results["mirrorkv"][i].OpsPerSec/results["etcd"][i].OpsPerSec))
		}
		if o.wants("mirrorkv") && o.wants("ceiling") {
			row = append(row, fmt.Sprintf("%.1f%%", 100*results["mirrorkv"][i].OpsPerSec/results["ceiling"][i].OpsPerSec))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	printErrors(w, o, rounds)
}

func printErrors(w io.Writer, o *options, rounds map[string][][]*loadgen.Result) {
	var lines []string
	for _, s := range o.Systems {
		for i, rs := range rounds[s] {
			for round, r := range rs {
				if r.Errors > 0 {
					lines = append(lines, fmt.Sprintf("- %s, %s at %d clients, round %d: %s", s, workloads[i].name, workloads[i].clients, round+1, errorKinds(r)))
				}
			}
		}
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "\nno errors")
		return
	}
	fmt.Fprintf(w, "\nerrors:\n%s\n", strings.Join(lines, "\n"))
}

// errorKinds lists a result's errors by kind: "none", or "timeout 3, 5xx 1".
func errorKinds(r *loadgen.Result) string {
	if r.Errors == 0 {
		return "none"
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, r.ErrorsByKind[k]))
	}
	return strings.Join(kinds, ", ")
}
