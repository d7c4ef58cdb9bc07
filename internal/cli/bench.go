package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/loadgen"
)

type benchOptions struct {
	Clients   int           // --clients
	Duration  time.Duration // --duration
	Ops       int64         // --ops
	ValueSize int           // --value-size
	Keys      int           // --keys
	Mix       string        // --mix
	JSON      bool          // --json
}

func newBenchCmd(e *env) *cobra.Command {
	return benchCmd(e, func(conn *connectOptions, cfg loadgen.Config, asJSON bool) error {
		c, err := conn.client()
		if err != nil {
			return err
		}
		defer c.Close()
		return runBench(e, loadgen.ClientTarget{Client: c}, cfg, asJSON)
	})
}

// benchCmd parses the flags into a run and hands it to run; tests replace run.
func benchCmd(e *env, run func(*connectOptions, loadgen.Config, bool) error) *cobra.Command {
	var conn connectOptions
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "load a group with writes and reads and report throughput, latency and errors",
		Long: `Run a closed-loop load against the group over the HTTPS API with a client certificate:
--clients workers each keep one request in flight, on reused connections, for --duration
or until --ops requests have been made, then the throughput, the latency quantiles of the
successful requests and the failed ones by kind are printed. A progress line goes to
stderr while it runs; Ctrl-C stops early and still reports.

--mix is write, read (linearizable), stale-read, txn, or mixed:R with R percent
linearizable reads and the rest writes. A txn is one POST /v1/txn that puts two random keys
if the first exists. Mixes that read or compare first write each of the --keys keys once.
The client certificate needs the readwrite role. docs/benchmarks.md compares mirrorkv with
etcd on the same machine.`,
		Example: `  mirrorkv bench --clients 16 --duration 30s
  mirrorkv bench --mix mixed:90 --clients 64 --keys 10000 --json > result.json
  mirrorkv bench --mix stale-read --ops 100000`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd)
			if err != nil {
				return err
			}
			return run(&conn, cfg, o.JSON)
		},
	}
	addConnectFlags(cmd, &conn)
	f := cmd.Flags()
	f.IntVar(&o.Clients, "clients", 16, "concurrent clients, each with one request in flight")
	f.DurationVar(&o.Duration, "duration", loadgen.DefaultDuration, "run for `D` (excludes --ops)")
	f.Int64Var(&o.Ops, "ops", 0, "stop after `N` requests instead (excludes --duration)")
	f.IntVar(&o.ValueSize, "value-size", loadgen.DefaultValueSize, "bytes per written value")
	f.IntVar(&o.Keys, "keys", loadgen.DefaultKeys, "requests pick keys uniformly among `K` keys (bench/0 …)")
	f.StringVar(&o.Mix, "mix", "write", "write, read, stale-read, txn or mixed:R (R percent reads)")
	f.BoolVar(&o.JSON, "json", false, "print the result as one JSON object (durations in nanoseconds)")
	return cmd
}

// config checks the flags and turns them into a run; every mistake is a usage error.
func (o *benchOptions) config(cmd *cobra.Command) (loadgen.Config, error) {
	if cmd.Flags().Changed("ops") && cmd.Flags().Changed("duration") {
		return loadgen.Config{}, usagef("--duration and --ops exclude each other")
	}
	mix, err := loadgen.ParseMix(o.Mix)
	if err != nil {
		return loadgen.Config{}, usagef("--%w", err)
	}
	var bad []string
	for _, c := range []struct {
		ok   bool
		flag string
	}{
		{o.Clients > 0, fmt.Sprintf("--clients %d: want at least 1", o.Clients)},
		{o.Duration > 0, fmt.Sprintf("--duration %s: want a positive duration", o.Duration)},
		{o.Ops >= 0, fmt.Sprintf("--ops %d: want at least 1", o.Ops)},
		{o.Keys > 0, fmt.Sprintf("--keys %d: want at least 1", o.Keys)},
		{o.ValueSize >= 0, fmt.Sprintf("--value-size %d: want 0 or more bytes", o.ValueSize)},
	} {
		if !c.ok {
			bad = append(bad, c.flag)
		}
	}
	if len(bad) > 0 {
		return loadgen.Config{}, usagef("%s", strings.Join(bad, "; "))
	}
	cfg := loadgen.Config{Clients: o.Clients, Duration: o.Duration, Ops: o.Ops, Mix: mix, Keys: o.Keys, ValueSize: o.ValueSize}
	if o.Ops > 0 {
		cfg.Duration = 0
	}
	return cfg, nil
}

// runBench fills the keys if the mix reads, runs the load with a progress line on stderr,
// and prints the result.
func runBench(e *env, target loadgen.Target, cfg loadgen.Config, asJSON bool) error {
	if cfg.Mix.Reads() {
		fmt.Fprintf(e.stderr, "writing %d keys for the reads to find\n", cfg.Keys)
		if err := loadgen.Fill(e.ctx, target, cfg); err != nil {
			return serverError(err)
		}
	}
	p := newProgressLine(e.stderr)
	cfg.Progress = p.show
	res, err := loadgen.Run(e.ctx, target, cfg)
	p.end()
	if err != nil {
		return usageError{err}
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	} else {
		printBench(e.stdout, res)
	}
	if res.Ops == 0 && res.Errors > 0 {
		return fmt.Errorf("every request failed (%s); try `mirrorkv status` and `mirrorkv kv put` with the same settings", errorKinds(res.ErrorsByKind))
	}
	return nil
}

// progressLine rewrites one line in place on a terminal and prints one line per report
// elsewhere, so that a log of the run stays readable.
type progressLine struct {
	w        io.Writer
	terminal bool
	shown    bool
}

func newProgressLine(w io.Writer) *progressLine {
	f, ok := w.(*os.File)
	terminal := false
	if ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	return &progressLine{w: w, terminal: terminal}
}

func (p *progressLine) show(pr loadgen.Progress) {
	line := fmt.Sprintf("%6.1fs  %10d ops  %9.1f ops/s  %d errors", pr.Elapsed.Seconds(), pr.Ops, pr.Rate, pr.Errors)
	if p.terminal {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

func (p *progressLine) end() {
	if p.terminal && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func printBench(w io.Writer, res *loadgen.Result) {
	fmt.Fprintf(w, "%s, %d clients, %d-byte values, %d keys: %d ops in %.2fs\n\n",
		res.Mix, res.Clients, res.ValueSize, res.Keys, res.Ops, res.Elapsed.Seconds())
	fmt.Fprintf(w, "%-10s %10s %10s %10s %10s %10s %10s\n", "op", "ops/s", "p50", "p90", "p99", "p99.9", "max")
	row := func(name string, opsPerSec float64, l loadgen.Latency) {
		fmt.Fprintf(w, "%-10s %10.1f %10s %10s %10s %10s %10s\n", name, opsPerSec,
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	}
	names := slices.Sorted(maps.Keys(res.PerOp))
	for _, k := range names {
		row(k, res.PerOp[k].OpsPerSec, res.PerOp[k].Latency)
	}
	if len(names) > 1 {
		row("all", res.OpsPerSec, res.Latency)
	}
	fmt.Fprintf(w, "\nerrors: %s\n", errorKinds(res.ErrorsByKind))
}

// ms prints a latency in milliseconds with three decimals: the unit stays the same down a
// column, so that rows compare at a glance.
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }

func errorKinds(kinds map[string]int64) string {
	if len(kinds) == 0 {
		return "none"
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
