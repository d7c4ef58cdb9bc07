package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	clean := `{"seed":7,"round":0,"faults":{"kill":2,"bridge":1},"ops":900,"checked":800,"unknown":3,"anomalies":0,"undecided":false,"lostAckedWrites":0,"convergeSeconds":4.5,"seconds":20}
{"seed":7,"round":1,"faults":{"kill":1,"renew":1},"ops":1000,"checked":950,"unknown":1,"anomalies":0,"undecided":false,"lostAckedWrites":0,"convergeSeconds":9.25,"seconds":22}
{"seed":9,"round":0,"faults":{"slow":4},"ops":700,"checked":650,"unknown":0,"anomalies":0,"undecided":false,"lostAckedWrites":0,"convergeSeconds":2,"seconds":18}
`
	for _, tc := range []struct {
		name, lines, under string
		code               int
		want               []string
	}{
		{"clean", clean, "", 0, []string{
			"histories          3 (2 seeds, 60 s of rounds)",
			"operations checked 2400 (4 with an unknown outcome)",
			"anomalies          0 (undecided checks: 0)",
			"lost acked writes  0",
			"longest converge   9.2 s (seed 7 round 1)",
			"faults injected    9",
			"  kill           3",
			"  slow           4",
		}},
		{"under the history directory", clean, "nemesis", 0, []string{"histories          3 "}},
		{"an anomaly fails", clean + `{"seed":11,"round":0,"faults":{"pause":1},"checked":10,"anomalies":1,"convergeSeconds":1}` + "\n", "", 1,
			[]string{"anomalies          1 (undecided", "histories          4 (3 seeds"}},
		{"a lost write fails", `{"seed":11,"round":0,"lostAckedWrites":2}` + "\n", "", 1, []string{"lost acked writes  2"}},
		{"an undecided check fails", `{"seed":11,"round":0,"undecided":true}` + "\n", "", 1, []string{"(undecided checks: 1)"}},
		{"a bad line", clean + "{not json\n", "", 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, tc.under), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tc.under, "summary.jsonl"), []byte(tc.lines), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if code := run([]string{dir}, &out, &errOut); code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out.String(), errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("no summary", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := run([]string{t.TempDir()}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "no summary.jsonl") {
			t.Errorf("exit %d, stderr %q; want 2 and no summary.jsonl", code, errOut.String())
		}
	})
}
