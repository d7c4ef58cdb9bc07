// Command soaksummary sums up a combined-nemesis soak: it reads the summary.jsonl that
// TestNemesis writes (one line per checked history) and prints the histories, operations,
// faults injected by kind, anomalies, lost acknowledged writes and the longest convergence.
// It exits 1 when any history had an anomaly, an undecided check or a lost write.
//
//	go run ./e2e/soaksummary DIR
//
// DIR is the directory that holds summary.jsonl, or the -mirrorkv.history-dir it is under.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// history is the part of one summary line this command reads.
type history struct {
	Seed            uint64         `json:"seed"`
	Round           int            `json:"round"`
	Faults          map[string]int `json:"faults"`
	Checked         int            `json:"checked"`
	Unknown         int64          `json:"unknown"`
	Anomalies       int            `json:"anomalies"`
	Undecided       bool           `json:"undecided"`
	Lost            int            `json:"lostAckedWrites"`
	ConvergeSeconds float64        `json:"convergeSeconds"`
	Seconds         float64        `json:"seconds"`
}

// totals is what a directory of histories adds up to.
type totals struct {
	histories, checked, anomalies, undecided, lost int
	unknown                                        int64
	seeds                                          map[uint64]bool
	faults                                         map[string]int
	seconds                                        float64
	longest                                        history
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: soaksummary DIR (the directory holding summary.jsonl)")
		return 2
	}
	f, err := open(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "soaksummary:", err)
		return 2
	}
	defer f.Close()
	t, err := sum(f)
	if err != nil {
		fmt.Fprintf(stderr, "soaksummary: %s: %v\n", f.Name(), err)
		return 2
	}
	t.print(stdout)
	if t.anomalies > 0 || t.undecided > 0 || t.lost > 0 {
		return 1
	}
	return 0
}

// open finds summary.jsonl in dir, or in dir/nemesis.
func open(dir string) (*os.File, error) {
	var errs []error
	for _, p := range []string{filepath.Join(dir, "summary.jsonl"), filepath.Join(dir, "nemesis", "summary.jsonl")} {
		f, err := os.Open(p)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no summary.jsonl in %s: %w", dir, errors.Join(errs...))
}

func sum(r io.Reader) (totals, error) {
	t := totals{seeds: map[uint64]bool{}, faults: map[string]int{}}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var h history
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			return t, fmt.Errorf("line %d: %w", line, err)
		}
		t.histories++
		t.seeds[h.Seed] = true
		t.checked += h.Checked
		t.unknown += h.Unknown
		t.anomalies += h.Anomalies
		t.lost += h.Lost
		t.seconds += h.Seconds
		if h.Undecided {
			t.undecided++
		}
		for k, n := range h.Faults {
			t.faults[k] += n
		}
		if t.histories == 1 || h.ConvergeSeconds > t.longest.ConvergeSeconds {
			t.longest = h
		}
	}
	return t, sc.Err()
}

func (t totals) print(w io.Writer) {
	fmt.Fprintf(w, "histories          %d (%d seeds, %.0f s of rounds)\n", t.histories, len(t.seeds), t.seconds)
	fmt.Fprintf(w, "operations checked %d (%d with an unknown outcome)\n", t.checked, t.unknown)
	fmt.Fprintf(w, "anomalies          %d (undecided checks: %d)\n", t.anomalies, t.undecided)
	fmt.Fprintf(w, "lost acked writes  %d\n", t.lost)
	if t.histories > 0 {
		fmt.Fprintf(w, "longest converge   %.1f s (seed %d round %d)\n", t.longest.ConvergeSeconds, t.longest.Seed, t.longest.Round)
	}
	kinds := make([]string, 0, len(t.faults))
	total := 0
	for k, n := range t.faults {
		kinds = append(kinds, k)
		total += n
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "faults injected    %d\n", total)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-14s %d\n", k, t.faults[k])
	}
}
