package reason

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/reasons.md from the table")

const docPath = "../docs/reasons.md"

// render is docs/reasons.md: every code with its name, text and fix.
func render() string {
	var b strings.Builder
	b.WriteString(`# Reason codes

Every refused connection, refused member or unhealthy state in mirrorkv carries one of these
numbers. The same code appears in handshake errors, ` + "`mirrorkv probe`" + `, the status API, the
logs (attribute ` + "`reason`" + `) and the metrics (label ` + "`reason`" + `). Codes are stable; scripts may
match on them. 0-99: healthy, 100-199: certificate or TLS, 200-299: cluster, 300-399: storage,
400-499: a request the API refuses.

This file is generated from ` + "`reason/reason.go`" + ` by ` + "`go test ./reason -update`" + `.

| code | name | meaning | what to do |
|---:|---|---|---|
`)
	for _, c := range All() {
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s |\n", int(c), c.Name(), c.Text(), strings.ReplaceAll(c.Fix(), "|", `\|`))
	}
	return b.String()
}

func TestDocsListEveryCode(t *testing.T) {
	want := render()
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s: %v (run go test ./reason -update)", docPath, err)
	}
	for _, c := range All() {
		if !strings.Contains(string(got), fmt.Sprintf("| %d | `%s` |", int(c), c.Name())) {
			t.Errorf("%s does not document code %d %s", docPath, int(c), c.Name())
		}
	}
	if string(got) != want {
		t.Errorf("%s is out of date with the table: run go test ./reason -update", docPath)
	}
}

func TestTable(t *testing.T) {
	names := map[string]Code{}
	for _, c := range All() {
		if c.Name() == "" || c.Text() == "" || (c != OK && c.Fix() == "") {
			t.Errorf("code %d lacks a name, a text or a fix", int(c))
		}
		if prev, dup := names[c.Name()]; dup {
			t.Errorf("codes %d and %d share the name %q", int(prev), int(c), c.Name())
		}
		names[c.Name()] = c
	}
	if Code(999).Known() || Code(999).Name() != "code-999" {
		t.Error("an unknown code passes as known")
	}
}

func TestOfAndWrap(t *testing.T) {
	base := errors.New("x")
	if Of(nil, Timeout) != OK || Of(base, Timeout) != Timeout {
		t.Error("Of ignores its default or nil")
	}
	err := fmt.Errorf("dial: %w", Wrap(Revoked, base))
	if Of(err, Timeout) != Revoked || !errors.Is(err, base) {
		t.Errorf("Of(%v) = %v; the code or the cause is lost", err, Of(err, Timeout))
	}
	if Wrap(Revoked, nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
}
