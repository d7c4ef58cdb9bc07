package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// TestUI drives the status page on /ui in headless Chromium from Debian's packages. The
// browser presents a readonly client certificate from its NSS database, picked by the
// AutoSelectCertificateForUrls policy, and trusts the members by the replication CA in that
// database: real mutual TLS from the browser, no proxy and no ignored certificate errors.
// It checks that the page shows three members and one PRIMARY, that it colours certificate
// expiry at 30, 7 and 1 days, that a browser without a client certificate is refused by the
// member's TLS, and that it shows the new primary after the old one is killed, without a
// reload. It keeps a screenshot of each state.
func TestUI(t *testing.T) {
	needBrowser(t)
	g := startGroup(t, localgroup.Options{})
	old := primaryOf(t, g)
	// The page is served by a member that stays up: it keeps reading the status from there
	// while the primary is killed.
	view := others(g, old)[0]
	shots := screenshotDir(t)

	certFile, keyFile, err := g.PKI.IssueClient("ui-readonly", pki.AccessReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	withCert := browserHome(t, g.PKI.MemberCA, certFile, keyFile)
	withoutCert := browserHome(t, g.PKI.MemberCA, "", "")
	selectCertificate(t, view.ClientURL)

	u := &uiRun{g: g, old: old, view: view, shots: shots, withoutCert: withoutCert}
	u.page = openBrowser(t, withCert)
	resp, err := chromedp.Run(u.page, chromedp.NavigateResponse(view.ClientURL+"/ui"))
	if err != nil {
		t.Fatalf("load %s/ui with a readonly certificate: %v", view.ClientURL, err)
	}
	if resp.Status != 200 || !strings.HasPrefix(fmt.Sprint(resp.Headers["Content-Security-Policy"]), "default-src 'none'") {
		t.Fatalf("page: status %d, Content-Security-Policy %v", resp.Status, resp.Headers["Content-Security-Policy"])
	}
	if _, err := chromedp.Run(u.page, chromedp.Evaluate[bool]("window.mirrorkvNoReload = true")); err != nil {
		t.Fatal(err)
	}

	t.Run("shows three members and one primary", u.shows)
	t.Run("colours certificate expiry at 30, 7 and 1 days", u.colours)
	t.Run("refuses a browser without a client certificate", u.refusesBare)
	t.Run("shows the new primary after a kill, without a reload", u.followsFailover)
}

// uiRun is the state TestUI's steps share: the group, the browser page showing view's
// status page, the primary when the page loaded, and where screenshots go.
type uiRun struct {
	g           *localgroup.Group
	page        context.Context
	old, view   *localgroup.Member
	shots       string
	withoutCert string // a browser HOME without the client certificate
}

// shows checks the page as it loads: CSP, script, style, captions and scopes, three
// members and one PRIMARY, and a phone's width.
func (u *uiRun) shows(t *testing.T) {
	rows := waitRows(t, u.page, "three members, one of them PRIMARY", func(rows map[string]string) bool {
		return len(rows) == 3 && count(rows, "PRIMARY") == 1 && rows[u.old.Name] == "PRIMARY"
	})
	t.Logf("members: %v", rows)
	live, err := chromedp.Run(u.page, chromedp.Evaluate[string](`document.getElementById("primary").textContent`))
	if err != nil || !strings.HasPrefix(live, u.old.Name+", since ") {
		t.Errorf("primary live region %q (%v), want %q and since when", live, err, u.old.Name)
	}
	// The script ran and the style sheet applied under the CSP; every table has a caption
	// and every header cell a scope.
	checks, err := chromedp.Run(u.page, chromedp.Evaluate[map[string]bool](`({
		live: document.getElementById("conn").className === "ok",
		styled: getComputedStyle(document.querySelector("caption")).fontStyle === "italic",
		captions: Array.from(document.querySelectorAll("table")).every(t => t.caption !== null),
		scopes: document.querySelectorAll("th:not([scope])").length === 0,
	})`))
	if err != nil || len(checks) != 4 {
		t.Fatalf("page checks %v: %v", checks, err)
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("page check %s failed", what)
		}
	}
	shoot(t, u.page, u.shots, "1-group.png", 1280, 900)
	shoot(t, u.page, u.shots, "1-group-phone.png", 390, 844)
	// At a phone's width nothing is wider than the screen.
	wide, err := chromedp.Run(u.page, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`))
	if err != nil || wide > 390 {
		t.Errorf("at 390 px the page is %v px wide (%v)", wide, err)
	}
}

// colours gives the members certificates with 20 days, 5 days and 23 hours left and
// checks their colours and the trust material table.
func (u *uiRun) colours(t *testing.T) {
	third := others(u.g, u.old)[1]
	want := map[string]string{u.old.Name: "exp-30", u.view.Name: "exp-7", third.Name: "exp-1"}
	const day = 24 * time.Hour
	for m, left := range map[*localgroup.Member]time.Duration{u.old: 20 * day, u.view: 5 * day, third: 23 * time.Hour} {
		expiringCertificate(t, u.g, m, left)
	}
	eventually(t, 45*time.Second, "the page colours each member's certificate expiry", func() error {
		got, err := chromedp.Run(u.page, chromedp.Evaluate[map[string]string](`Object.fromEntries(
			Array.from(document.querySelectorAll("#members tbody tr")).map(tr => [tr.dataset.member, tr.cells[6].className]))`))
		if err != nil {
			return err
		}
		for name, class := range want {
			if got[name] != class {
				return fmt.Errorf("expiry classes %v, want %v", got, want)
			}
		}
		return nil
	})
	waitText(t, u.page, "expiries", "the certificates running out", func(s string) bool {
		return strings.Count(s, "certificate CN=") == 3 && strings.Contains(s, "("+fmt.Sprint(int(reason.CertExpiring))+")")
	})
	shoot(t, u.page, u.shots, "2-expiry.png", 1280, 900)
}

// refusesBare checks that a browser without a client certificate cannot load the page, and
// that the page then shows the refusal.
func (u *uiRun) refusesBare(t *testing.T) {
	bare := openBrowser(t, u.withoutCert)
	err := chromedp.Do(bare, chromedp.Navigate(u.view.ClientURL+"/ui"))
	if err == nil || !strings.Contains(err.Error(), "ERR_") {
		t.Fatalf("load without a client certificate: %v, want a TLS refusal (net::ERR_...)", err)
	}
	t.Logf("without a client certificate: %v", err)
	shoot(t, bare, u.shots, "3-no-certificate.png", 1280, 600)
	// The member counted the refusal, and the page shows it under its reason.
	code := fmt.Sprintf("(%d)", int(reason.NoCertificate))
	eventually(t, 30*time.Second, "the page shows the client port's refusal "+code, func() error {
		rows, err := chromedp.Run(u.page, chromedp.Evaluate[[][]string](
			`Array.from(document.querySelectorAll("#refusals tbody tr")).map(tr => Array.from(tr.cells).map(c => c.textContent))`))
		if err != nil {
			return err
		}
		for _, r := range rows {
			if len(r) == 3 && r[0] == "client" && strings.HasSuffix(r[1], code) && r[2] != "0" {
				return nil
			}
		}
		return fmt.Errorf("refusals %v", rows)
	})
	shoot(t, u.page, u.shots, "3-refusal-counted.png", 1280, 900)
}

// followsFailover kills the primary and checks that the page, never reloaded, shows
// another PRIMARY.
func (u *uiRun) followsFailover(t *testing.T) {
	if p := primaryOf(t, u.g); p != u.old {
		t.Fatalf("the primary moved from %s to %s before the kill", u.old.Name, p.Name)
	}
	if err := u.old.Kill(); err != nil {
		t.Fatal(err)
	}
	rows := waitRows(t, u.page, "another member PRIMARY", func(rows map[string]string) bool {
		return count(rows, "PRIMARY") == 1 && rows[u.old.Name] != "PRIMARY"
	})
	t.Logf("members after killing %s: %v", u.old.Name, rows)
	same, err := chromedp.Run(u.page, chromedp.Evaluate[bool]("window.mirrorkvNoReload === true"))
	if err != nil || !same {
		t.Errorf("the page was reloaded (%v)", err)
	}
	shoot(t, u.page, u.shots, "4-new-primary.png", 1280, 900)
}

// expiringCertificate gives m a new member certificate of 70 days that has left ahead of
// it, as if issued 70 days minus left ago, and has m reload it. The members warn only about
// a certificate whose life is at least twice the warning's window, so a certificate issued
// short on purpose would not do.
func expiringCertificate(t *testing.T, g *localgroup.Group, m *localgroup.Member, left time.Duration) {
	t.Helper()
	const life = 70 * 24 * time.Hour
	issued := time.Now().Add(left - life)
	ca, err := pki.OpenCAWith(g.PKI.ReplicationCA().Dir(), pki.OpenOptions{Clock: pki.Clock{Now: func() time.Time { return issued }}})
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue(pki.IssueRequest{Name: m.Name, IPs: []net.IP{net.ParseIP(m.Host)},
		DNS: []string{"localhost"}, Kind: pki.KindMember, Renew: true, Days: int(life / (24 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.WriteIssued(filepath.Dir(m.CertFile), is); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
}

// needBrowser makes sure Chromium, NSS's tools and openssl are there: as root it installs
// them from Debian, as anyone else it fails saying how.
func needBrowser(t *testing.T) {
	t.Helper()
	var missing []string
	for _, c := range []string{"chromium", "certutil", "pk12util", "openssl"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s missing: run `apt-get install -y chromium libnss3-tools openssl` as root (.ci/run does)", strings.Join(missing, ", "))
	}
	t.Logf("%s missing: installing chromium libnss3-tools openssl from Debian", strings.Join(missing, ", "))
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "chromium", "libnss3-tools", "openssl"}} {
		cmd := exec.CommandContext(t.Context(), "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// browserHome makes a HOME whose NSS database ($HOME/.pki/nssdb, where Chromium on Linux
// keeps certificates) trusts caFile for servers and, unless certFile is "", holds the client
// certificate and its key.
func browserHome(t *testing.T, caFile, certFile, keyFile string) string {
	t.Helper()
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "certutil", "-N", "-d", "sql:"+db, "--empty-password")
	run(t, "certutil", "-A", "-d", "sql:"+db, "-n", "mirrorkv replication CA", "-t", "C,,", "-i", caFile)
	if certFile != "" {
		p12 := filepath.Join(home, "client.p12")
		run(t, "openssl", "pkcs12", "-export", "-in", certFile, "-inkey", keyFile, "-out", p12,
			"-name", "mirrorkv readonly", "-passout", "pass:")
		run(t, "pk12util", "-i", p12, "-d", "sql:"+db, "-W", "")
	}
	return home
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// selectCertificate installs a Chromium policy, for as long as the test runs, that presents
// the client certificate issued by the group's client CA to origin without asking.
func selectCertificate(t *testing.T, origin string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the Chromium policy goes to /etc/chromium/policies/managed: run the test as root (CI does)")
	}
	dir := "/etc/chromium/policies/managed"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rule, err := json.Marshal(map[string]any{"pattern": origin, "filter": map[string]any{"ISSUER": map[string]string{"CN": "mirrorkv client CA"}}})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(rule)}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mirrorkv-e2e-ui-"+rand.Text()+".json")
	if err := os.WriteFile(file, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(file) })
}

// openBrowser starts headless Chromium with home as HOME and a fresh profile; it ends with
// the test. Errors and CSP violations the page reports fail the test.
func openBrowser(t *testing.T, home string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("chromium"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("HOME="+home),
		chromedp.WindowSize(1280, 900),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Errorf("page exception: %s at %s:%d", ev.ExceptionDetails.Text, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				t.Errorf("page console error: %s", consoleText(ev))
			}
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func consoleText(ev *runtime.EventConsoleAPICalled) string {
	var parts []string
	for _, a := range ev.Args {
		parts = append(parts, string(a.Value)+a.Description)
	}
	return strings.Join(parts, " ")
}

// waitRows waits until the members table satisfies ok and returns it: role by member name.
func waitRows(t *testing.T, page context.Context, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	var rows map[string]string
	eventually(t, 45*time.Second, "the page shows "+what, func() error {
		pairs, err := chromedp.Run(page, chromedp.Evaluate[[][]string](
			`Array.from(document.querySelectorAll("#members tbody tr")).map(tr => [tr.dataset.member, tr.dataset.role])`))
		if err != nil {
			return err
		}
		rows = map[string]string{}
		for _, p := range pairs {
			rows[p[0]] = p[1]
		}
		if !ok(rows) {
			return fmt.Errorf("members %v", rows)
		}
		return nil
	})
	return rows
}

func waitText(t *testing.T, page context.Context, id, what string, ok func(string) bool) {
	t.Helper()
	eventually(t, 30*time.Second, "the page shows "+what, func() error {
		s, err := chromedp.Run(page, chromedp.Evaluate[string](`document.getElementById("`+id+`").textContent`))
		if err != nil {
			return err
		}
		if !ok(s) {
			return errors.New(s)
		}
		return nil
	})
}

func count(rows map[string]string, role string) int {
	n := 0
	for _, r := range rows {
		if r == role {
			n++
		}
	}
	return n
}

// screenshotDir is where the screenshots go: -mirrorkv.history-dir/ui, or a directory that
// outlives the test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "mirrorkv-ui-screenshots")
	if *historyDir != "" {
		dir = filepath.Join(*historyDir, "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// shoot saves a PNG of the whole page at the given viewport width and height.
func shoot(t *testing.T, page context.Context, dir, name string, width, height int64) {
	t.Helper()
	if err := chromedp.Do(page, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(page, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
