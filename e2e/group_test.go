package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/wire"
)

// fastServe makes elections and snapshots quick enough for tests.
var fastServe = []string{"--election-timeout", "500ms", "--heartbeat-timeout", "500ms"}

// eventually retries check until it returns nil or the timeout passes, then fails with the
// last error. It bounds waits; it never asserts speed.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func clientOf(t *testing.T, g *localgroup.Group, members ...*localgroup.Member) *client.Client {
	t.Helper()
	c, err := g.AdminOf(members...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func statusOf(t *testing.T, g *localgroup.Group, m *localgroup.Member) (wire.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return g.Admin().StatusOf(ctx, m.ClientURL)
}

// primaryOf waits until a running member reports itself PRIMARY and returns it.
func primaryOf(t *testing.T, g *localgroup.Group) *localgroup.Member {
	t.Helper()
	var primary *localgroup.Member
	eventually(t, 30*time.Second, "a member becomes primary", func() error {
		for _, m := range g.Members {
			if !m.Running() {
				continue
			}
			if st, err := statusOf(t, g, m); err == nil && st.Role == wire.RolePrimary {
				primary = m
				return nil
			}
		}
		return fmt.Errorf("no running member reports %s", wire.RolePrimary)
	})
	return primary
}

func others(g *localgroup.Group, not *localgroup.Member) []*localgroup.Member {
	var out []*localgroup.Member
	for _, m := range g.Members {
		if m != not {
			out = append(out, m)
		}
	}
	return out
}

func TestGroup_WritesAndReadsThroughEveryMember(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, Async: 1, ServeArgs: fastServe})
	ctx := t.Context()
	for i, m := range g.Members[:3] {
		c := clientOf(t, g, m)
		key := fmt.Sprintf("k%d", i)
		rev, err := c.Put(ctx, key, []byte("v-"+m.Name))
		if err != nil {
			t.Fatalf("put through %s (forwarded unless primary): %v", m.Name, err)
		}
		if rev <= 0 {
			t.Fatalf("put through %s: revision %d, want > 0", m.Name, rev)
		}
	}
	for _, m := range g.Members[:3] {
		c := clientOf(t, g, m)
		for i, w := range g.Members[:3] {
			got, _, err := c.Get(ctx, fmt.Sprintf("k%d", i))
			if err != nil || string(got) != "v-"+w.Name {
				t.Fatalf("linearizable get k%d through %s = %q, %v; want %q", i, m.Name, got, err, "v-"+w.Name)
			}
		}
	}
	async := g.Members[3]
	ac := clientOf(t, g, async)
	eventually(t, 20*time.Second, "async member's stale read sees the writes", func() error {
		got, _, err := ac.Get(ctx, "k2", client.Stale())
		if err != nil {
			return err
		}
		if string(got) != "v-m3" {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})

	// Compare-and-set: the right revision applies, a stale one gets 412 with the current.
	c := clientOf(t, g, g.Members[1])
	rev, err := c.Put(ctx, "cas", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutIf(ctx, "cas", []byte("2"), rev); err != nil {
		t.Fatalf("compare-and-set at the current revision: %v", err)
	}
	_, err = c.PutIf(ctx, "cas", []byte("3"), rev)
	if cur, ok := client.IsPreconditionFailed(err); !ok || cur <= rev {
		t.Fatalf("compare-and-set at a stale revision = %v; want 412 with a newer current revision", err)
	}

	st, err := statusOf(t, g, g.Members[0])
	if err != nil {
		t.Fatal(err)
	}
	roles := map[wire.Role]int{}
	for _, ms := range st.Members {
		roles[ms.Role]++
		if ms.DN == "" || ms.CertNotAfter == nil || ms.ClientURL == "" || ms.MemberAddr == "" {
			t.Errorf("status entry of %s lacks dn, certNotAfter, clientURL or memberAddr: %+v", ms.Name, ms)
		}
	}
	if roles[wire.RolePrimary] != 1 || roles[wire.RoleStandby] != 2 || roles[wire.RoleAsync] != 1 {
		t.Fatalf("roles in status = %v; want 1 PRIMARY, 2 STANDBY, 1 ASYNC (%+v)", roles, st.Members)
	}
	if st.Group != "mirrorkv" || st.Primary == "" || st.ActiveNodes != 4 {
		t.Fatalf("status group=%q primary=%q activeNodes=%d; want mirrorkv, a primary, 4", st.Group, st.Primary, st.ActiveNodes)
	}
}

func TestGroup_FailoverAndRejoin(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	ctx := t.Context()
	c := clientOf(t, g, g.Members...)
	if _, err := c.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	old := primaryOf(t, g)
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	survivors := clientOf(t, g, others(g, old)...)
	eventually(t, 30*time.Second, "writes resume after the primary is killed", func() error {
		_, err := survivors.Put(ctx, "during", []byte("2"))
		return err
	})
	next := primaryOf(t, g)
	if next == old {
		t.Fatalf("killed member %s still counted as primary", old.Name)
	}
	if err := g.Restart(old); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the old primary rejoins as STANDBY with the writes it missed", func() error {
		st, err := statusOf(t, g, old)
		if err != nil {
			return err
		}
		if st.Role != wire.RoleStandby {
			return fmt.Errorf("%s is %s", old.Name, st.Role)
		}
		got, _, err := clientOf(t, g, old).Get(ctx, "during", client.Stale())
		if err != nil {
			return err
		}
		if string(got) != "2" {
			return fmt.Errorf("stale read of during on %s = %q", old.Name, got)
		}
		return nil
	})
	// Leadership moves on request, back to the restarted member.
	if err := c.TransferLeadership(ctx, old.Name); err != nil {
		t.Fatalf("transfer leadership to %s: %v", old.Name, err)
	}
	if p := primaryOf(t, g); p != old {
		t.Fatalf("primary after transfer = %s, want %s", p.Name, old.Name)
	}
}

func TestGroup_RestartEveryMemberKeepsData(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: append([]string{"--snapshot-threshold", "64", "--snapshot-interval", "200ms", "--trailing-logs", "16"}, fastServe...)})
	ctx := t.Context()
	c := clientOf(t, g, g.Members...)
	const n = 300
	for i := range n {
		if _, err := c.Put(ctx, fmt.Sprintf("key/%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range g.Members {
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range g.Members {
		if err := g.Restart(m); err != nil {
			t.Fatal(err)
		}
	}
	primaryOf(t, g)
	eventually(t, 30*time.Second, "every acknowledged key is back after a full restart", func() error {
		l, err := c.List(ctx, "key/", "", 1000)
		if err != nil {
			return err
		}
		if len(l.KVs) != n {
			return fmt.Errorf("listed %d keys, want %d", len(l.KVs), n)
		}
		for i, kv := range l.KVs {
			if string(kv.Value) != fmt.Sprint(i) {
				return fmt.Errorf("%s = %q, want %d", kv.Key, kv.Value, i)
			}
		}
		return nil
	})
}

func TestGroup_AsyncCatchesUpFromSnapshotAndIsPromoted(t *testing.T) {
	// raft-wal keeps serving entries below its truncated head until their whole segment is
	// gone, so a catch-up from it rarely needs a snapshot; the bolt log store drops them.
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: append([]string{"--log-store", "bolt",
		"--snapshot-threshold", "64", "--snapshot-interval", "200ms", "--trailing-logs", "16"}, fastServe...)})
	ctx := t.Context()
	// Far more entries than the primary keeps after a snapshot: a new member can only
	// catch up by installing a snapshot over the member channel.
	c := clientOf(t, g, g.Members...)
	for i := range 400 {
		if _, err := c.Put(ctx, fmt.Sprintf("s/%03d", i), bytes.Repeat([]byte{'x'}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "the primary compacts its log", func() error {
		if !strings.Contains(primaryOf(t, g).Log(), "compacting logs") {
			return fmt.Errorf("no compaction yet")
		}
		return nil
	})
	async, err := g.Grow(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	ac := clientOf(t, g, async)
	eventually(t, 30*time.Second, "async member has every key after the snapshot", func() error {
		l, err := ac.List(ctx, "s/", "", 1000)
		if err != nil {
			return err
		}
		if len(l.KVs) != 400 {
			return fmt.Errorf("%d keys", len(l.KVs))
		}
		return nil
	})
	if !strings.Contains(async.Log(), "Installed remote snapshot") {
		t.Fatalf("%s caught up without installing a snapshot; the test no longer covers snapshot transfer", async.Name)
	}
	if err := c.Promote(ctx, async.Name); err != nil {
		t.Fatalf("promote %s: %v", async.Name, err)
	}
	eventually(t, 30*time.Second, "promoted member is a voter", func() error {
		st, err := statusOf(t, g, async)
		if err != nil {
			return err
		}
		if st.Role != wire.RoleStandby {
			return fmt.Errorf("%s is %s", async.Name, st.Role)
		}
		return nil
	})
}

func TestGroup_MembershipGuardsTheMemberPort(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	ctx := t.Context()
	// A certificate from the right CA, for a member nobody authorised.
	intruder := &localgroup.Member{Name: "intruder", Host: "127.0.0.1"}
	if err := g.PKI.IssueMember(intruder); err != nil {
		t.Fatal(err)
	}
	probe := func(cert, key string) (string, error) {
		out, err := exec.Command(binary, "probe", g.Members[0].MemberAddr, "--ca", g.PKI.MemberCA, "--cert", cert, "--key", key).CombinedOutput()
		return string(out), err
	}
	out, err := probe(intruder.CertFile, intruder.KeyFile)
	if err == nil || !strings.Contains(out, "refused your certificate") {
		t.Fatalf("probe with an unauthorised member certificate: err=%v\n%s\nwant a refusal", err, out)
	}
	// The refused side logs the exact reason, with the DN, for the operator.
	eventually(t, 5*time.Second, "m1 logs why it refused the intruder", func() error {
		if log := g.Members[0].Log(); !strings.Contains(log, "dn-not-authorised") || !strings.Contains(log, `CN=intruder`) {
			return fmt.Errorf("no dn-not-authorised line for CN=intruder in m1's log")
		}
		return nil
	})
	victim := g.Members[2]
	if out, err := probe(victim.CertFile, victim.KeyFile); err != nil {
		t.Fatalf("probe with an authorised member certificate: %v\n%s", err, out)
	}
	c := clientOf(t, g, g.Members[0], g.Members[1])
	if err := c.RemoveMember(ctx, victim.Name); err != nil {
		t.Fatalf("remove %s: %v", victim.Name, err)
	}
	eventually(t, 15*time.Second, "a removed member's certificate is refused", func() error {
		if out, err := probe(victim.CertFile, victim.KeyFile); err == nil {
			return fmt.Errorf("still accepted:\n%s", out)
		}
		return nil
	})
	ms, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("members after remove = %+v, want 2", ms)
	}
	if _, err := c.Put(ctx, "after-remove", []byte("ok")); err != nil {
		t.Fatalf("write with two members left: %v", err)
	}
}

func TestServe_RefusesAnotherMembersDirectory(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: fastServe})
	m := g.Members[0]
	if err := m.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--name", "someone-else", "--dir", m.Dir,
		"--member-listen", m.MemberAddr, "--client-listen", m.ClientAddr,
		"--member-cert", m.CertFile, "--member-key", m.KeyFile,
		"--member-ca", g.PKI.MemberCA, "--member-crl", g.PKI.MemberCRL, "--client-ca", g.PKI.ClientCA, "--client-crl", g.PKI.ClientCRL)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `holds member "m1"`) {
		t.Fatalf("serve with m1's directory as someone-else: err=%v\n%s\nwant a refusal naming the owner", err, out)
	}
	cmd = exec.Command(binary, "serve", "--name", m.Name, "--group", "other", "--dir", m.Dir,
		"--member-listen", m.MemberAddr, "--client-listen", m.ClientAddr,
		"--member-cert", m.CertFile, "--member-key", m.KeyFile,
		"--member-ca", g.PKI.MemberCA, "--member-crl", g.PKI.MemberCRL, "--client-ca", g.PKI.ClientCA, "--client-crl", g.PKI.ClientCRL)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `of group "mirrorkv"`) {
		t.Fatalf("serve with a directory of group mirrorkv as group other: err=%v\n%s", err, out)
	}
}

func TestCLI_AgainstGroup(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), g.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mirrorkv %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("kv", "put", "colour", "blue")
	if out := run("kv", "get", "colour"); strings.TrimSpace(out) != "blue" {
		t.Fatalf("kv get colour = %q, want blue", out)
	}
	raw := run("status", "--json")
	var st wire.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	// The fields a script written for Amlen's HighAvailability status looks for, by their
	// JSON names.
	var fields map[string]any
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if fields["version"] != "v1" || fields["status"] != "Active" || fields["enabled"] != true {
		t.Fatalf("status --json: version %v, status %v, enabled %v; want v1, Active, true", fields["version"], fields["status"], fields["enabled"])
	}
	if len(st.Members) != 3 || st.SyncNodes != 3 {
		t.Fatalf("status --json: %d members, %d in sync; want 3 and 3", len(st.Members), st.SyncNodes)
	}
	// The metrics a monitoring system scrapes, over the same mutual TLS as the API.
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	resp, err := hc.Get(g.Members[0].ClientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	for _, series := range []string{"mirrorkv_cluster_raft_state", "mirrorkv_cluster_applied_index", "mirrorkv_cluster_apply_lag",
		"mirrorkv_http_requests_total", "mirrorkv_http_request_duration_seconds", "mirrorkv_tls_leaf_expiry_seconds",
		"go_goroutines", "process_resident_memory_bytes"} {
		if !bytes.Contains(body, []byte(series)) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	table := run("status")
	for _, m := range g.Members {
		if !strings.Contains(table, m.Name) {
			t.Fatalf("status table lacks %s:\n%s", m.Name, table)
		}
	}
	if !strings.Contains(table, string(wire.RolePrimary)) {
		t.Fatalf("status table shows no primary:\n%s", table)
	}
}

func TestServe_ReloadsCredentialsOnSIGHUP(t *testing.T) {
	// A long reload interval: only the SIGHUP can make the member notice the new files.
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: append([]string{"--reload-interval", "1h"}, fastServe...)})
	m := g.Members[0]
	renewed, err := g.PKI.ReplicationCA().Issue(pki.IssueRequest{Name: m.Name, IPs: []net.IP{net.ParseIP(m.Host)}, DNS: []string{"localhost"}, Days: 30, Renew: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.WriteIssued(filepath.Dir(m.CertFile), renewed); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the member serves its renewed certificate", func() error {
		st, err := statusOf(t, g, m)
		if err != nil {
			return err
		}
		if len(st.Members) != 1 || st.Members[0].CertNotAfter == nil || !st.Members[0].CertNotAfter.Equal(renewed.Cert.NotAfter) {
			return fmt.Errorf("status shows certNotAfter %v, want %v", st.Members[0].CertNotAfter, renewed.Cert.NotAfter)
		}
		return nil
	})
	if _, err := clientOf(t, g, m).Put(t.Context(), "after-reload", []byte("ok")); err != nil {
		t.Fatalf("write after the reload: %v", err)
	}
}

// TestGroup_ClientPortTakenBeforeStart: a port the local group picked for a member is taken
// by another process before the member starts, as a test running alongside can do. The
// member must then start on another port and the group form, instead of the group's admin
// client talking to the other process until its deadline.
func TestGroup_ClientPortTakenBeforeStart(t *testing.T) {
	var squatter net.Listener
	var taken string
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe, BeforeStart: func(g *localgroup.Group) error {
		m := g.Members[2]
		taken = m.ClientAddr
		var err error
		squatter, err = net.Listen("tcp", taken) // accepts into its backlog, never answers
		return err
	}})
	defer squatter.Close()
	m3 := g.Members[2]
	if m3.ClientAddr == taken {
		t.Fatalf("m3 still has the taken client address %s", taken)
	}
	if !strings.Contains(m3.Log(), "address already in use") {
		t.Errorf("m3's log does not show the first start failing on the taken port:\n%s", tail(m3.Log(), 2000))
	}
	st, err := statusOf(t, g, m3)
	if err != nil || (st.Role != wire.RoleStandby && st.Role != wire.RolePrimary) {
		t.Fatalf("m3 on its new port: %+v, %v; want it in the group", st, err)
	}
}
