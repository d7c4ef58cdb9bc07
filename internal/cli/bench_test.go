package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/loadgen"
)

func TestBenchOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		want loadgen.Config
		err  string // substring of the usage error; "" for none
	}{
		{"defaults", nil, loadgen.Config{Clients: 16, Duration: 10 * time.Second, Mix: loadgen.WriteOnly, Keys: 1000, ValueSize: 256}, ""},
		{"ops replaces duration", []string{"--ops", "500", "--clients", "4"},
			loadgen.Config{Clients: 4, Ops: 500, Mix: loadgen.WriteOnly, Keys: 1000, ValueSize: 256}, ""},
		{"everything", []string{"--clients", "64", "--duration", "3s", "--value-size", "1024", "--keys", "10", "--mix", "mixed:90"},
			loadgen.Config{Clients: 64, Duration: 3 * time.Second, Mix: loadgen.Mix{Read: 0.9, Write: 0.1}, Keys: 10, ValueSize: 1024}, ""},
		{"stale reads", []string{"--mix", "stale-read"},
			loadgen.Config{Clients: 16, Duration: 10 * time.Second, Mix: loadgen.StaleReadOnly, Keys: 1000, ValueSize: 256}, ""},
		{"both stops", []string{"--ops", "5", "--duration", "1s"}, loadgen.Config{}, "exclude each other"},
		{"bad mix", []string{"--mix", "writes"}, loadgen.Config{}, "--mix"},
		{"bad percentage", []string{"--mix", "mixed:120"}, loadgen.Config{}, "0 to 100"},
		{"no clients", []string{"--clients", "0", "--keys", "0"}, loadgen.Config{}, "--clients 0: want at least 1; --keys 0"},
		{"negative duration", []string{"--duration", "-1s"}, loadgen.Config{}, "--duration -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got loadgen.Config
			e := &env{ctx: t.Context(), getenv: func(string) string { return "" }}
			cmd := benchCmd(e, func(_ *connectOptions, cfg loadgen.Config, _ bool) error { got = cfg; return nil })
			cmd.SetArgs(tc.argv)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.Execute()
			if tc.err != "" {
				if _, ok := errors.AsType[usageError](err); !ok || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want a usage error with %q", err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Fatalf("config %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestBench(t *testing.T) {
	_, vars := testGroup(t, "")
	t.Run("json", func(t *testing.T) {
		r := runCLI(t, vars, "", "bench", "--ops", "200", "--clients", "4", "--keys", "20", "--mix", "mixed:50", "--json")
		if r.code != ExitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "writing 20 keys") {
			t.Errorf("stderr %q does not say that it fills the keys first", r.stderr)
		}
		// The shape scripts rely on: top-level fields, latency quantiles in ns, per-op figures.
		var doc map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		for _, k := range []string{"mix", "clients", "keys", "valueSize", "elapsedNs", "ops", "errors", "opsPerSec", "latencyNs", "errorsByKind", "perOp"} {
			if _, ok := doc[k]; !ok {
				t.Errorf("no %q in %s", k, r.stdout)
			}
		}
		lat, _ := doc["latencyNs"].(map[string]any)
		for _, k := range []string{"p50", "p90", "p99", "p999", "max", "mean"} {
			if v, ok := lat[k].(float64); !ok || v <= 0 {
				t.Errorf("latencyNs.%s = %v, want a positive number", k, lat[k])
			}
		}
		var res loadgen.Result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatal(err)
		}
		if res.Ops != 200 || res.Errors != 0 || res.Mix != "mixed:50" || res.PerOp["read"].Ops+res.PerOp["write"].Ops != 200 {
			t.Errorf("result %+v; want 200 reads and writes without errors", res)
		}
	})
	t.Run("table", func(t *testing.T) {
		r := runCLI(t, vars, "", "bench", "--ops", "50", "--clients", "2")
		if r.code != ExitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{"write, 2 clients, 256-byte values, 1000 keys: 50 ops", "p99.9", "errors: none"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("every request failed", func(t *testing.T) {
		_, ro := testGroup(t, "readonly")
		r := runCLI(t, ro, "", "bench", "--ops", "5")
		if r.code != ExitFailure || !strings.Contains(r.stderr, "every request failed (other 5)") {
			t.Fatalf("readonly bench: exit %d, stderr %q; want 1 and every request failed", r.code, r.stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if r := runCLI(t, vars, "", "bench", "--ops", "5", "--duration", "1s"); r.code != ExitUsage {
			t.Fatalf("exit %d, want %d: %s", r.code, ExitUsage, r.stderr)
		}
	})
}
