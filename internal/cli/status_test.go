package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// fixedNow is the clock of the golden files.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time {
	t := fixedNow.Add(d)
	return &t
}

// fixtureStatus is a five-member group seen from the primary: one standby in sync, one
// catching up, one async member, one refused for its certificate.
func fixtureStatus() wire.Status {
	refused := reason.DNNotAuthorised
	st := wire.Status{
		Group: "prod", Node: "m1", Role: wire.RolePrimary, PreviousRole: wire.RoleStandby, Primary: "m1",
		PrimarySince: at(-3 * time.Hour), ActiveNodes: 4, SyncNodes: 3, SyncPercent: 100,
		AppliedIndex: 120345, CommitIndex: 120345,
		Members: []wire.MemberStatus{
			{Name: "m1", MemberAddr: "10.0.0.1:7001", DN: "CN=m1,O=example", Voter: true, Role: wire.RolePrimary, SyncPercent: 100, CertNotAfter: at(89 * 24 * time.Hour)},
			{Name: "m2", MemberAddr: "10.0.0.2:7001", DN: "CN=m2,O=example", Voter: true, Role: wire.RoleStandby, LastContact: at(-40 * time.Millisecond), SyncPercent: 100, CertNotAfter: at(89 * 24 * time.Hour)},
			{Name: "m3", MemberAddr: "10.0.0.3:7001", DN: "CN=m3,O=example", Voter: true, Role: wire.RoleUnsync, LastContact: at(-2 * time.Second), Lag: 48211, SyncPercent: 42.5,
				CertNotAfter: at(10 * 24 * time.Hour), Reason: wire.Reason{Code: int(reason.CatchingUp), Text: reason.CatchingUp.Text()}},
			{Name: "dr1", MemberAddr: "192.0.2.10:7001", DN: "CN=dr1,O=example", Role: wire.RoleAsync, LastContact: at(-45 * time.Second), Lag: 12, SyncPercent: 100, CertNotAfter: at(-24 * time.Hour)},
			{Name: "m5", MemberAddr: "10.0.0.5:7001", DN: "CN=m5,O=other", Voter: true, Role: wire.RoleUnsync, SyncPercent: -1,
				Reason: wire.Reason{Code: int(refused), Text: refused.Text()}},
		},
	}
	// Every member but m5 (refused) reports the client CA running out in 24 days; m3 its own
	// certificate in 10 days; dr1 its own certificate and a CRL, both a day past their end.
	ca := expiryOf("client", "ca", "CN=clients,O=example", 24*24*time.Hour, reason.CAExpiring)
	for i := range st.Members[:4] {
		st.Members[i].Expiries = []wire.Expiry{ca}
	}
	st.Members[2].Expiries = []wire.Expiry{expiryOf("member", "leaf", "CN=m3,O=example", 10*24*time.Hour, reason.CertExpiring), ca}
	st.Members[3].Expiries = []wire.Expiry{expiryOf("member", "leaf", "CN=dr1,O=example", -24*time.Hour, reason.CertExpired),
		expiryOf("member", "crl", "CN=replication,O=example", -24*time.Hour, reason.CRLExpired), ca}
	return st
}

func expiryOf(port, material, subject string, in time.Duration, code reason.Code) wire.Expiry {
	return wire.Expiry{Port: port, Material: material, Subject: subject, At: *at(in), Reason: wire.Reason{Code: int(code), Text: code.Text()}}
}

func TestRenderStatus(t *testing.T) {
	cases := []struct {
		name string
		st   wire.Status
		bars bool
	}{
		{"status.golden", fixtureStatus(), false},
		{"status-watch.golden", fixtureStatus(), true},
		{"status-preferred.golden", preferredStatus(), false},
		{"status-no-primary.golden", wire.Status{Group: "prod", Node: "m2", Role: wire.RoleUnsync, PreviousRole: wire.RoleStandby,
			Reason: wire.Reason{Code: int(reason.NoPrimary), Text: reason.NoPrimary.Text()}, Members: []wire.MemberStatus{{Name: "m2", Voter: true, Role: wire.RoleUnsync}}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := renderStatus(&b, c.st, fixedNow, statusView{bars: c.bars, contactWarn: defaultContactWarn}); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, b.Bytes())
		})
	}
}

func TestStatusCmd(t *testing.T) {
	srv, vars := testGroup(t, "readonly")
	srv.Group.SetStatus(fixtureStatus())
	r := runCLI(t, vars, "", "status")
	if r.code != ExitOK || !strings.Contains(r.stdout, "group prod  primary m1") || !strings.Contains(r.stdout, "107 certificate subject DN is not an authorised member") {
		t.Fatalf("status: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, vars, "", "status", "--json")
	var st wire.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Members) != 5 || st.Members[2].SyncPercent != 42.5 {
		t.Fatalf("status --json: %v %+v", err, st)
	}
	if r := runCLI(t, vars, "", "status", "--json", "--watch"); r.code != ExitUsage {
		t.Fatalf("--json --watch: exit %d, want 2", r.code)
	}
}

func TestWatchStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fetches := 0
	fetch := func(context.Context) (wire.Status, error) {
		fetches++
		switch fetches {
		case 1:
			return wire.Status{}, errors.New("reach m1: connection refused")
		case 3:
			cancel()
		}
		return fixtureStatus(), nil
	}
	var out bytes.Buffer
	if err := watchStatus(ctx, &out, fetch, time.Millisecond, statusView{bars: true, contactWarn: defaultContactWarn}); err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(out.String(), clearScreen)[1:]
	if len(frames) != 2 {
		t.Fatalf("%d frames drawn, want 2 (the third fetch ended the watch): %q", len(frames), out.String())
	}
	if !strings.Contains(frames[0], "connection refused") {
		t.Errorf("first frame %q does not show the failed fetch", frames[0])
	}
	if !strings.Contains(frames[1], "m3           [############..................]  42.5%") {
		t.Errorf("second frame lacks m3's progress bar:\n%s", frames[1])
	}
}

// preferredStatus is fixtureStatus with m3 preferred, not in force while it catches up.
func preferredStatus() wire.Status {
	st := fixtureStatus()
	st.Preferred = "m3"
	st.PreferredReason = &wire.Reason{Code: int(reason.PreferredUnavailable), Text: reason.PreferredUnavailable.Text()}
	return st
}
