// Command compare measures mirrorkv against etcd on this machine with one load generator
// (package loadgen): it builds etcd and mirrorkv into ../.bin, starts a 3-member mirrorkv
// group and a 3-member etcd cluster on loopback, both with mutual TLS between members and
// for clients and both fsyncing every commit, runs the same workloads against each (and
// against a do-nothing server with the same mutual TLS, the ceiling), stops everything and
// prints a Markdown table. Run it from this directory:
//
//	go run . [-mode table|failover|catchup|all] [-duration 10s] [-systems ceiling,mirrorkv,etcd]
//
// docs/benchmarks.md explains the workloads and holds the figures of a run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the driver's flags.
type options struct {
	Mode      string        // -mode
	Systems   []string      // -systems
	Duration  time.Duration // -duration: measured time of each workload
	Warmup    time.Duration // -warmup: unmeasured time before each workload
	EtcdConns int           // -etcd-conns
	Rounds    int           // -rounds: table rounds; medians are reported
	Runs      int           // -runs: failover runs per system
	FoClients int           // -failover-clients
	FoWindow  time.Duration // -failover-window: load kept up after each kill
	CatchupMB int           // -catchup-mb
	CatchupVS int           // -catchup-value-size
	ValueSize int           // -value-size: bytes per written value in the table and failover
	Bin       string        // -bin
	Root      string        // -root
	Dir       string        // -dir
	Keep      bool          // -keep
	Out       io.Writer
	Log       io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stdout, stderr io.Writer) (*options, error) {
	o := &options{Out: stdout, Log: stderr}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	systems := fs.String("systems", "ceiling,mirrorkv,etcd", "systems to measure, comma-separated")
	fs.StringVar(&o.Mode, "mode", "table", "table (throughput and p99), failover, catchup, or all")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time of each workload")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured load before each workload (connections, caches)")
	fs.IntVar(&o.EtcdConns, "etcd-conns", 4, "gRPC connections the etcd target spreads requests over")
	fs.IntVar(&o.Rounds, "rounds", 1, "rounds of the table workloads, each starting every system afresh; medians are reported")
	fs.IntVar(&o.Runs, "runs", 5, "failover runs per system; the median gap is reported")
	fs.IntVar(&o.FoClients, "failover-clients", 8, "writers during failover runs")
	fs.DurationVar(&o.FoWindow, "failover-window", 8*time.Second, "load kept up after each kill")
	fs.IntVar(&o.CatchupMB, "catchup-mb", 64, "MiB of values the group holds when the new member joins")
	fs.IntVar(&o.CatchupVS, "catchup-value-size", 16<<10, "bytes per value for the catch-up data")
	fs.IntVar(&o.ValueSize, "value-size", 256, "bytes per written value in the table and failover workloads")
	fs.StringVar(&o.Bin, "bin", "../.bin", "where the etcd and mirrorkv binaries are built")
	fs.StringVar(&o.Root, "root", "../..", "the mirrorkv repository (for building mirrorkv)")
	fs.StringVar(&o.Dir, "dir", "", "work directory for certificates, data and logs (default: a new temporary one)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q; every setting is a flag", fs.Args())
	}
	var errs []error
	if !slices.Contains([]string{"table", "failover", "catchup", "all"}, o.Mode) {
		errs = append(errs, fmt.Errorf("-mode %q: want table, failover, catchup or all", o.Mode))
	}
	for s := range strings.SplitSeq(*systems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains([]string{"ceiling", "mirrorkv", "etcd"}, s) {
				errs = append(errs, fmt.Errorf("-systems: unknown system %q; want ceiling, mirrorkv or etcd", s))
			}
			o.Systems = append(o.Systems, s)
		}
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Runs < 1 || o.Rounds < 1 || o.FoClients < 1 || o.FoWindow <= 0 || o.CatchupMB < 1 || o.CatchupVS < 1 || o.ValueSize < 1 || o.EtcdConns < 1 {
		errs = append(errs, errors.New("durations, counts and sizes must be positive"))
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	bins, err := ensureBinaries(ctx, o)
	if err != nil {
		return err
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "mirrorkv-compare-"); err != nil {
			return fmt.Errorf("create work directory: %w", err)
		}
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	if !o.Keep {
		defer os.RemoveAll(o.Dir)
	}
	fmt.Fprintf(o.Log, "work directory %s\n", o.Dir)
	printMachine(o.Out, bins)
	if o.Mode == "table" || o.Mode == "all" {
		if err := runTable(ctx, o, bins); err != nil {
			return err
		}
	}
	if o.Mode == "failover" || o.Mode == "all" {
		if err := runFailover(ctx, o, bins); err != nil {
			return err
		}
	}
	if o.Mode == "catchup" || o.Mode == "all" {
		if err := runCatchup(ctx, o, bins); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Out, "\nload average at the end: %s\n", loadAverage())
	return nil
}

// wants reports whether system s is to be measured.
func (o *options) wants(s string) bool { return slices.Contains(o.Systems, s) }

// subdir makes and returns a fresh directory under the work directory.
func (o *options) subdir(name string) (string, error) {
	d, err := os.MkdirTemp(o.Dir, name+"-")
	if err != nil {
		return "", fmt.Errorf("create %s directory: %w", name, err)
	}
	return d, nil
}
