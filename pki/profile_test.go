package pki

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// issueProfile issues name for p from ca (ECDSA unless kt says otherwise) and writes it in
// p's layout into a new directory.
func issueProfile(t *testing.T, ca *CA, p *Profile, name string, kt KeyType, replica bool) (string, []WrittenFile) {
	t.Helper()
	if kt == "" {
		kt = KeyECDSAP256
	}
	is, err := ca.Issue(IssueRequest{Name: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyType: kt, Profile: p})
	if err != nil {
		t.Fatalf("issue %s for %s: %v", name, p.Name, err)
	}
	dir := t.TempDir()
	written, err := WriteProfile(dir, p, is, ca.Certificate(), replica)
	if err != nil {
		t.Fatal(err)
	}
	return dir, written
}

func mustProfile(t testing.TB, name string) *Profile {
	t.Helper()
	p, err := ProfileByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProfiles_Issue(t *testing.T) {
	cases := []struct {
		profile string
		files   []string // in the layout's order; keys 0600, the rest 0644
		cn      string
		eku     []x509.ExtKeyUsage
		ku      x509.KeyUsage
		kt      KeyType
	}{
		{"iris", []string{"ca.pem", "m1.pem", "m1.key"}, "m1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, KeyECDSAP256},
		{"vast", []string{"ca.crt", "m1.crt", "m1.key"}, "Replication-m1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, KeyRSA3072},
		{"amlen", []string{"ha_cert.pem", "ha_key.pem", "ha_ca.pem"}, "m1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			x509.KeyUsageDigitalSignature, KeyECDSAP256},
		{"mariadb", []string{"ca.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"}, "m1",
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, x509.KeyUsageDigitalSignature, KeyECDSAP256},
		{"manticore", []string{"ca-cert.pem", "server-cert.pem", "server-key.pem"}, "m1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			x509.KeyUsageDigitalSignature, KeyECDSAP256},
	}
	for _, tc := range cases {
		t.Run(tc.profile, func(t *testing.T) {
			ca := newTestCA(t, CAOptions{Name: "Replication-Root-CA"})
			p := mustProfile(t, tc.profile)
			dir, written := issueProfile(t, ca, p, "m1", tc.kt, true)
			var names []string
			for _, f := range written {
				names = append(names, filepath.Base(f.Path))
				fi, err := os.Stat(f.Path)
				if err != nil {
					t.Fatal(err)
				}
				want := fs.FileMode(0o644)
				if f.Content == FileKey {
					want = 0o600
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", f.Path, fi.Mode().Perm(), want)
				}
			}
			if !slices.Equal(names, tc.files) {
				t.Fatalf("files %v, want %v", names, tc.files)
			}
			layout := p.Layout("m1", true)
			certFile := filepath.Join(dir, FileFor(layout, FileCert))
			c := mustParse(t, readFile(t, certFile))
			if c.Subject.CommonName != tc.cn || !slices.Equal(c.ExtKeyUsage, tc.eku) || c.KeyUsage != tc.ku || len(c.URIs) != 0 {
				t.Errorf("CN %q EKU %v KU %b URIs %v; want CN %q EKU %v KU %b and no URI", c.Subject.CommonName, c.ExtKeyUsage, c.KeyUsage, c.URIs, tc.cn, tc.eku, tc.ku)
			}
			fs := Lint(LintInput{Cert: readFile(t, certFile), CA: readFile(t, filepath.Join(dir, FileFor(layout, FileCA))),
				Key: readFile(t, filepath.Join(dir, FileFor(layout, FileKey))), Now: t0, Profile: p, CertFile: certFile, SystemRoots: emptyRoots})
			if HasErrors(fs) {
				t.Errorf("lint --profile %s of its own certificate: %+v", p.Name, fs)
			}
		})
	}
}

func mustParse(t testing.TB, b []byte) *x509.Certificate {
	t.Helper()
	cs, err := ParseCertificates(b)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

// TestProfileLint_ServerOnlyNetscape: a server's certificate needs no SSL Client.
func TestProfileLint_ServerOnlyNetscape(t *testing.T) {
	fx := newLintFixture(t)
	in := fx.input(fx.leaf(t, func(c *x509.Certificate) {
		c.URIs, c.ExtKeyUsage = nil, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		nsCertType(0x40)(c)
	}))
	in.Profile = mustProfile(t, "manticore")
	if fs := Lint(in); HasErrors(fs) {
		t.Errorf("manticore certificate with SSL Server: %+v", fs)
	}
}

func TestProfileByName(t *testing.T) {
	if p, err := ProfileByName("MariaDB"); err != nil || p.Name != "mariadb" {
		t.Errorf("MariaDB: %v, %v", p, err)
	}
	if _, err := ProfileByName("oracle"); err == nil || !strings.Contains(err.Error(), "iris, vast, amlen, mariadb, manticore") {
		t.Errorf("oracle: %v", err)
	}
}

// TestIssue_DedicatedCA: VAST accepts anything its CA signed, so a CA that signs other
// certificates is refused.
func TestIssue_DedicatedCA(t *testing.T) {
	vast := mustProfile(t, "vast")
	shared := newTestCA(t, CAOptions{Name: "Replication-Root-CA"})
	if _, err := shared.Issue(IssueRequest{Name: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := shared.Issue(IssueRequest{Name: "vast1", Profile: vast}); err == nil || !strings.Contains(err.Error(), "1 valid certificate(s) of other kinds") {
		t.Fatalf("VAST from a CA that signs members: %v", err)
	}
	own := newTestCA(t, CAOptions{Name: "Replication-Root-CA"})
	for _, name := range []string{"vast1", "vast2"} {
		if _, err := own.Issue(IssueRequest{Name: name, Profile: vast}); err != nil {
			t.Fatalf("VAST %s from its own CA: %v", name, err)
		}
	}
}

func TestSign_Profile(t *testing.T) {
	ca := newTestCA(t, CAOptions{Name: "Replication-Root-CA"})
	csr := func(cn string) []byte {
		req, err := NewRequest(RequestOptions{Name: cn})
		if err != nil {
			t.Fatal(err)
		}
		return req.CSRPEM
	}
	is, err := ca.Sign(csr("db1"), SignOptions{Profile: mustProfile(t, "iris")})
	if err != nil {
		t.Fatal(err)
	}
	if is.Cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 || len(is.Cert.ExtKeyUsage) != 2 || is.KeyPEM != nil {
		t.Errorf("signed for iris: KU %b EKU %v", is.Cert.KeyUsage, is.Cert.ExtKeyUsage)
	}
	if _, err := ca.Sign(csr("vast1"), SignOptions{Profile: mustProfile(t, "vast")}); err == nil || !strings.Contains(err.Error(), "Replication-vast1") {
		t.Errorf("VAST request without Replication-: %v", err)
	}
}

// TestProfileLint: certificates made by other tools, checked against each product's rules.
func TestProfileLint(t *testing.T) {
	fx := newLintFixture(t)
	noMirrorkv := func(c *x509.Certificate) { c.URIs = nil }
	serverOnly := func(c *x509.Certificate) {
		noMirrorkv(c)
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	clientOnly := func(c *x509.Certificate) {
		noMirrorkv(c)
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	bare := func(c *x509.Certificate) { noMirrorkv(c); c.ExtKeyUsage, c.KeyUsage = nil, 0 }
	cases := []struct {
		name     string
		profile  string
		mutate   func(*x509.Certificate)
		edit     func(*LintInput)
		rule     string
		severity Severity
		code     reason.Code
		contains string
	}{
		{"IRIS: serverAuth without clientAuth", "iris", serverOnly, nil, "ext-key-usage", SeverityError, reason.MissingClientAuth, "has serverAuth but not clientAuth"},
		{"IRIS: keyUsage without keyEncipherment", "iris", noMirrorkv, nil, "key-usage", SeverityError, reason.BadKeyUsage, "keyEncipherment"},
		{"IRIS: neither extension", "iris", bare, nil, "ext-key-usage", SeverityInfo, reason.OK, "every use is allowed"},
		{"IRIS: CA file out of order", "iris", func(c *x509.Certificate) {
			noMirrorkv(c)
			c.KeyUsage |= x509.KeyUsageKeyEncipherment
		}, func(in *LintInput) { in.CA = append(pemCert(fx.ca.cert), pemCert(intermediateOf(t, fx))...) }, "ca-order", SeverityError, reason.UnknownCA, "not its issuer"},
		{"VAST: an intermediate", "vast", noMirrorkv, func(in *LintInput) { in.CA = append(in.CA, pemCert(intermediateOf(t, fx))...) }, "intermediate", SeverityError, reason.UnknownCA, "directly"},
		{"VAST: CN without Replication-", "vast", noMirrorkv, nil, "profile-name", SeverityWarning, reason.BadCredentials, "Replication-"},
		{"Amlen: another file name", "amlen", noMirrorkv, func(in *LintInput) { in.CertFile = "/x/amlen.crt" }, "file-name", SeverityError, reason.BadCredentials, "ha_cert.pem"},
		{"Amlen: the other spelling", "amlen", noMirrorkv, func(in *LintInput) { in.CertFile = "/x/HA_cert.pem" }, "file-name", SeverityWarning, reason.BadCredentials, "HA_cert.pem"},
		{"MariaDB: the strings the server compares", "mariadb", noMirrorkv, nil, "sql-names", SeverityInfo, reason.OK, "REQUIRE SUBJECT '/CN=m1' AND ISSUER '/CN=lint CA'"},
		{"Manticore: clientAuth only", "manticore", clientOnly, nil, "ext-key-usage", SeverityError, reason.MissingServerAuth, "not serverAuth"},
		{"VAST: Netscape cert type SSL Server only", "vast", func(c *x509.Certificate) { noMirrorkv(c); nsCertType(0x40)(c) }, nil,
			"netscape-cert-type", SeverityError, reason.BadKeyUsage, "lacks SSL Client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := fx.input(fx.leaf(t, tc.mutate))
			in.Profile = mustProfile(t, tc.profile)
			if tc.edit != nil {
				tc.edit(&in)
			}
			fs := Lint(in)
			i := slices.IndexFunc(fs, func(f Finding) bool { return f.Rule == tc.rule && f.Severity == tc.severity })
			if i < 0 {
				t.Fatalf("no %s %s in %+v", tc.severity, tc.rule, fs)
			}
			if f := fs[i]; f.Reason() != tc.code && tc.severity != SeverityWarning || !strings.Contains(f.Message, tc.contains) || (f.Severity != SeverityInfo && f.Fix == "") {
				t.Errorf("finding %+v (reason %d); want reason %d and %q in the message, and a fix", f, f.Reason(), tc.code, tc.contains)
			}
			if hasFinding(fs, "group", SeverityError) || hasFinding(fs, "client-access", SeverityError) {
				t.Errorf("mirrorkv's own rules ran under --profile: %+v", fs)
			}
		})
	}
}

// intermediateOf makes a CA certificate under the fixture CA.
func intermediateOf(t *testing.T, fx *lintFixture) *x509.Certificate {
	t.Helper()
	tmpl := memberTemplate("intermediate")
	tmpl.IsCA, tmpl.URIs, tmpl.ExtKeyUsage = true, nil, nil
	tmpl.KeyUsage = x509.KeyUsageCertSign
	c, _ := signWith(t, tmpl, fx.ca.cert, mustKey(t).Public(), fx.ca.key)
	return c
}

func TestProfileSetup(t *testing.T) {
	setup := func(name, primary string) string {
		t.Helper()
		ca := newTestCA(t, CAOptions{Name: "Replication-Root-CA"}) // VAST's CA signs nothing else
		p := mustProfile(t, name)
		is, err := ca.Issue(IssueRequest{Name: "n-" + name, Profile: p})
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Setup(SetupInput{Dir: "/etc/tls", Layout: p.Layout(is.Name, primary != ""), Cert: is.Cert, CA: ca.Certificate(), Primary: primary})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, want := range map[string][]string{
		"iris":      {"File containing trusted Certificate Authority X.509 certificate(s): /etc/tls/ca.pem", "/etc/tls/n-iris.key", "CN=n-iris"},
		"vast":      {"echo | openssl s_client -connect VIP:49002\n", "-key /etc/tls/n-vast.key -cert /etc/tls/n-vast.crt -CAfile /etc/tls/ca.crt"},
		"amlen":     {"/etc/tls/ha_cert.pem", `"UseSecuredConnections": true`, `"${IMA_ADMIN}/configuration"`},
		"manticore": {"listen = 9443:https", "ssl_ca = /etc/tls/ca-cert.pem", "ssl_cert = /etc/tls/server-cert.pem", "ssl_key = /etc/tls/server-key.pem"},
		"mariadb": {"[mariadb]\nssl_ca = /etc/tls/ca.pem\nssl_cert = /etc/tls/server-cert.pem\nssl_key = /etc/tls/server-key.pem\nrequire_secure_transport = ON",
			"CREATE USER 'repl'@'%' REQUIRE SUBJECT '/CN=n-mariadb' AND ISSUER '/CN=Replication-Root-CA';",
			"MASTER_SSL=1,", "MASTER_SSL_CERT='/etc/tls/client-cert.pem'", "MASTER_SSL_VERIFY_SERVER_CERT=1;"},
	} {
		primary := ""
		if name == "mariadb" {
			primary = "db1:3306"
		}
		got := setup(name, primary)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s setup lacks %q:\n%s", name, w, got)
			}
		}
	}
	payload, err := AmlenPayload()
	var v struct{ HighAvailability map[string]any }
	if err != nil || json.Unmarshal(payload, &v) != nil || v.HighAvailability["UseSecuredConnections"] != true || v.HighAvailability["EnableHA"] != true {
		t.Errorf("Amlen payload %s: %v", payload, err)
	}
	if got := sqlString(`/O=db's \x/CN=a`); got != `'/O=db\'s \\x/CN=a'` {
		t.Errorf("sqlString: %s", got)
	}
}

// TestOneline: Oneline gives what openssl's X509_NAME_oneline gives (openssl x509 -subject
// -nameopt compat), which MariaDB compares with REQUIRE SUBJECT.
func TestOneline(t *testing.T) {
	dir := t.TempDir()
	for i, subj := range []string{
		"/CN=db1",
		"/C=DE/ST=Bayern/O=Acme Ltd/OU=DB/CN=db-1.example",
		"/O=Müller & Söhne/CN=app's",
		"/DC=example/DC=net/CN=a+OU=b/emailAddress=x@example.net",
		"/CN=tab\there",
	} {
		key, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
		openssl(t, dir, true, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-utf8",
			"-multivalue-rdn", "-subj", subj, "-keyout", key, "-out", crt, "-days", "1")
		c := mustParse(t, readFile(t, crt))
		got, err := Oneline(c.RawSubject)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSpace(strings.TrimPrefix(openssl(t, dir, true, "x509", "-in", crt, "-noout", "-subject", "-nameopt", "compat"), "subject="))
		if got != want {
			t.Errorf("%d %s: Oneline %q, openssl %q", i, subj, got, want)
		}
	}
}

func FuzzOneline(f *testing.F) {
	f.Add([]byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'd', 'b', '1'})
	f.Add([]byte{0x30, 0x10, 0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x1b, 0x04, 0, 0, 0, 'A'})
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Oneline(raw)
		if err == nil && strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r > '~' }) {
			t.Fatalf("Oneline %q holds a byte it should have escaped", s)
		}
	})
}

// TestProfiles_OpenSSL: each profile's files, in its layout, pass openssl verify, and
// openssl s_server and s_client complete a handshake with them (mutual where the product
// authenticates both ends).
func TestProfiles_OpenSSL(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			ca, err := InitCA(filepath.Join(t.TempDir(), "ca"), CAOptions{Name: "Replication-Root-CA", Unencrypted: true})
			if err != nil {
				t.Fatal(err)
			}
			kt := KeyECDSAP256
			if p.Name == "iris" {
				kt = KeyRSA3072 // IRIS's keyEncipherment on the key type it is meant for
			}
			srv, _ := issueProfile(t, ca, p, "one", kt, false)
			cli, _ := issueProfile(t, ca, p, "two", "", false)
			names := map[string]string{srv: "one", cli: "two"}
			path := func(dir string, c FileContent) string {
				return filepath.Join(dir, FileFor(p.Layout(names[dir], false), c))
			}
			caFile := path(srv, FileCA)
			for _, dir := range []string{srv, cli} {
				if out := openssl(t, dir, true, "verify", "-CAfile", caFile, path(dir, FileCert)); !strings.Contains(out, ": OK") {
					t.Fatalf("openssl verify: %s", out)
				}
			}
			server := []string{"-cert", path(srv, FileCert), "-key", path(srv, FileKey), "-CAfile", caFile}
			client := []string{"-CAfile", caFile, "-verify_return_error"}
			if p.ClientAuth {
				server = append(server, "-Verify", "1", "-verify_return_error")
				client = append(client, "-cert", path(cli, FileCert), "-key", path(cli, FileKey))
			}
			out := opensslHandshake(t, srv, server, client)
			if !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Fatalf("s_client:\n%s", out)
			}
		})
	}
}

// opensslHandshake runs openssl s_server with serverArgs and connects s_client with
// clientArgs; it returns the client's output.
func opensslHandshake(t *testing.T, dir string, serverArgs, clientArgs []string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := opensslCmd(dir, append([]string{"s_server", "-accept", addr}, serverArgs...)...)
	stdin, _ := srv.StdinPipe() // kept open: s_server stops at the end of its input
	stdout, _ := srv.StdoutPipe()
	srv.Stderr = srv.Stdout
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = srv.Process.Kill(); _ = srv.Wait() }()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ACCEPT") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("openssl s_server did not start")
	}
	cl := opensslCmd(dir, append([]string{"s_client", "-connect", addr}, clientArgs...)...)
	cl.Stdin = strings.NewReader("")
	out, _ := cl.CombinedOutput()
	return string(out)
}

// opensslCmd is openssl with args in dir, without the host's configuration.
func opensslCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(opensslPath, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OPENSSL_CONF="+os.DevNull)
	return cmd
}
