package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMariaDBReplication runs a MariaDB primary and replica with the certificates and
// settings 'mirrorkv ca issue --profile mariadb' prints, and checks that replication runs
// over TLS, that the printed REQUIRE SUBJECT ... AND ISSUER ... admits exactly the replica's
// certificate, and that 'mirrorkv probe --starttls mysql' tells a good client certificate
// from a bad one.
func TestMariaDBReplication(t *testing.T) {
	bins := findMariaDB(t)
	dir := t.TempDir()
	mk := func(args ...string) string { t.Helper(); return mirrorkvOK(t, args...) }
	ca, otherCA := filepath.Join(dir, "ca"), filepath.Join(dir, "other-ca")
	mk("ca", "init", "--dir", ca, "--name", "Replication-Root-CA", "--insecure-no-passphrase")
	mk("ca", "init", "--dir", otherCA, "--name", "Other-Root-CA", "--insecure-no-passphrase")
	pPort, rPort := freeTCPPort(t), freeTCPPort(t)
	primaryAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pPort))
	pFiles, rFiles := filepath.Join(dir, "primary-tls"), filepath.Join(dir, "replica-tls")
	pOut := mk("ca", "issue", "--dir", ca, "--profile", "mariadb", "--name", "db-primary", "--ip", "127.0.0.1", "--out", pFiles)
	rOut := mk("ca", "issue", "--dir", ca, "--profile", "mariadb", "--name", "db-replica", "--ip", "127.0.0.1",
		"--primary", primaryAddr, "--out", rFiles)
	// The replica's name from another CA, and another name from the right CA.
	strayFiles, otherFiles := filepath.Join(dir, "stray-tls"), filepath.Join(dir, "other-tls")
	mk("ca", "issue", "--dir", otherCA, "--profile", "mariadb", "--name", "db-replica", "--out", strayFiles)
	mk("ca", "issue", "--dir", ca, "--profile", "mariadb", "--name", "db-intruder", "--out", otherFiles)

	primary, replica := newMariaDB(t, bins, "primary", pPort, 1, snippet(t, pOut, "[mariadb]", ""), "performance_schema = ON"),
		newMariaDB(t, bins, "replica", rPort, 2, snippet(t, rOut, "[mariadb]", ""))
	installMariaDBs(t, primary, replica)
	primary.start(t)
	replica.start(t)

	primary.exec(t, snippet(t, rOut, "CREATE USER", "GRANT"))
	primary.exec(t, "CREATE DATABASE kv; CREATE TABLE kv.t (k INT PRIMARY KEY, v VARCHAR(32)); INSERT INTO kv.t VALUES (1,'blue'),(2,'green'),(3,'red');")
	replica.exec(t, snippet(t, rOut, "CHANGE MASTER TO", "START REPLICA;"))

	t.Run("rows arrive on the replica", func(t *testing.T) {
		waitFor(t, 20*time.Second, func() (bool, string) {
			n, _ := replica.query("SELECT COUNT(*) FROM kv.t")
			return n == "3", "replica has " + n + " rows; status " + fmt.Sprint(replica.replicaStatus(t))
		})
		primary.exec(t, "INSERT INTO kv.t VALUES (4,'gold');")
		waitFor(t, 10*time.Second, func() (bool, string) {
			v, _ := replica.query("SELECT v FROM kv.t WHERE k = 4")
			return v == "gold", "row 4 is " + strconv.Quote(v)
		})
	})
	t.Run("the replica connection uses TLS", func(t *testing.T) {
		st := replica.replicaStatus(t)
		if st["Master_SSL_Allowed"] != "Yes" || st["Slave_IO_Running"] != "Yes" || st["Master_SSL_Verify_Server_Cert"] != "Yes" {
			t.Fatalf("replica status: Master_SSL_Allowed=%q Slave_IO_Running=%q Master_SSL_Verify_Server_Cert=%q",
				st["Master_SSL_Allowed"], st["Slave_IO_Running"], st["Master_SSL_Verify_Server_Cert"])
		}
		// On the primary, the session status of the thread serving the replica.
		cipher, err := primary.query(`SELECT s.VARIABLE_VALUE FROM performance_schema.status_by_thread s
			JOIN performance_schema.threads t USING (THREAD_ID)
			WHERE t.PROCESSLIST_COMMAND = 'Binlog Dump' AND s.VARIABLE_NAME = 'Ssl_cipher'`)
		if err != nil || cipher == "" {
			t.Fatalf("Ssl_cipher of the primary's Binlog Dump thread: %q, %v", cipher, err)
		}
		t.Logf("primary's replication session: Ssl_cipher %s", cipher)
	})
	t.Run("probe --starttls mysql", func(t *testing.T) {
		good := mk("probe", primaryAddr, "--starttls", "mysql", "--ca", filepath.Join(rFiles, "ca.pem"),
			"--cert", filepath.Join(rFiles, "client-cert.pem"), "--key", filepath.Join(rFiles, "client-key.pem"))
		if !strings.Contains(good, "mutual TLS works") || !strings.Contains(good, "CN=db-primary") {
			t.Fatalf("probe with the replica's certificate:\n%s", good)
		}
		bad, err := mirrorkvRun(t, "probe", primaryAddr, "--starttls", "mysql", "--ca", filepath.Join(rFiles, "ca.pem"),
			"--cert", filepath.Join(strayFiles, "server-cert.pem"), "--key", filepath.Join(strayFiles, "server-key.pem"))
		if err == nil || !strings.Contains(bad, "(reason 101 unknown-ca)") {
			t.Fatalf("probe with a certificate of another CA: err %v\n%s", err, bad)
		}
	})
	t.Run("REQUIRE SUBJECT matches a signed request's subject byte for byte", func(t *testing.T) {
		// A request made by openssl with a multi-attribute, non-ASCII subject: the string
		// mirrorkv prints is the one the server compares.
		csrDir, files := filepath.Join(dir, "csr"), filepath.Join(dir, "csr-tls")
		if err := os.MkdirAll(csrDir, 0o700); err != nil {
			t.Fatal(err)
		}
		key, csr := filepath.Join(csrDir, "client-key.pem"), filepath.Join(csrDir, "app.csr")
		out, err := exec.Command("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-utf8", "-subj", "/C=DE/O=Müller & Söhne/OU=db's/CN=app-1", "-keyout", key, "-out", csr).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl req: %v\n%s", err, out)
		}
		signed := mk("ca", "sign", "--dir", ca, "--csr", csr, "--yes", "--profile", "mariadb", "--primary", primaryAddr,
			"--repl-user", "app", "--out", files)
		primary.exec(t, snippet(t, signed, "CREATE USER", "GRANT"))
		who, err := primary.queryTLS("app", filepath.Join(files, "ca.pem"), filepath.Join(files, "client-cert.pem"), key, "SELECT CURRENT_USER()")
		if err != nil || who != "app@%" {
			t.Fatalf("log in with the signed certificate: %q, %v\n%s", who, err, signed)
		}
	})
	t.Run("a replica certificate from another CA is refused", func(t *testing.T) {
		// The primary refuses the handshake: with TLS 1.2 the replica sees the alert during
		// it (2026, CR_SSL_CONNECTION_ERROR); with TLS 1.3 after it, as a reset (2013).
		errno, msg := replica.replicateWith(t, strayFiles)
		if (errno != "2026" && errno != "2013") || strings.Contains(msg, "Access denied") {
			t.Fatalf("Last_IO_Errno %s, want 2026 or 2013 (refused in the handshake): %s", errno, msg)
		}
	})
	t.Run("a replica certificate of another subject is refused", func(t *testing.T) {
		errno, msg := replica.replicateWith(t, otherFiles)
		if errno != "1045" || !strings.Contains(msg, "Access denied") {
			t.Fatalf("Last_IO_Errno %s, want 1045 Access denied: %s", errno, msg)
		}
	})
}

// mariaBins are the MariaDB programs the test runs.
type mariaBins struct{ server, install, client string }

// findMariaDB looks for the MariaDB programs on PATH and in /usr/sbin. Where they are
// missing it installs Debian's mariadb-server when it can (root with apt-get, as on the CI
// machines, where .ci/run installs it first anyway); otherwise the test fails and says how
// to install it. It never skips: the replica pair is what shows the mariadb profile works.
func findMariaDB(t *testing.T) mariaBins {
	t.Helper()
	b := lookMariaDB()
	if b.server != "" && b.install != "" && b.client != "" {
		return b
	}
	msg := fmt.Sprintf("MariaDB not found (mariadbd %q, mariadb-install-db %q, mariadb %q); install it with: apt-get install -y mariadb-server",
		b.server, b.install, b.client)
	apt, err := exec.LookPath("apt-get")
	if err != nil || os.Geteuid() != 0 {
		t.Fatal(msg)
	}
	t.Logf("%s: installing it", msg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "mariadb-server"}} {
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s\n%s", strings.Join(args, " "), err, out, msg)
		}
	}
	if b = lookMariaDB(); b.server == "" || b.install == "" || b.client == "" {
		t.Fatalf("mariadb-server installed, but its programs are still missing: %+v", b)
	}
	return b
}

// lookMariaDB finds the MariaDB programs, "" for each one missing.
func lookMariaDB() mariaBins {
	find := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
			for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
				if p := filepath.Join(d, n); isExecutable(p) {
					return p
				}
			}
		}
		return ""
	}
	return mariaBins{find("mariadbd", "mysqld"), find("mariadb-install-db", "mysql_install_db"), find("mariadb", "mysql")}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// mariaDB is one mariadbd of the test: its own data directory, socket and loopback port.
type mariaDB struct {
	name string
	bins mariaBins
	dir  string
	cnf  string // defaults file: the generated [mariadb] section, then the instance's own
	port string
	cmd  *exec.Cmd
	done chan error
}

func newMariaDB(t *testing.T, bins mariaBins, name string, port, serverID int, tlsSection string, extra ...string) *mariaDB {
	t.Helper()
	// A short directory: the socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "mkv-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m := &mariaDB{name: name, bins: bins, dir: dir, cnf: filepath.Join(dir, "my.cnf"), port: strconv.Itoa(port)}
	own := []string{"[mariadbd]", "datadir = " + filepath.Join(dir, "data"), "socket = " + m.socket(),
		"port = " + strconv.Itoa(port), "bind-address = 127.0.0.1", "server-id = " + strconv.Itoa(serverID),
		"log-bin = binlog", "pid-file = " + filepath.Join(dir, "mariadbd.pid"), "log-error = " + filepath.Join(dir, "error.log"),
		"skip-name-resolve", "innodb_buffer_pool_size = 16M", "innodb_log_file_size = 8M"}
	if os.Geteuid() == 0 {
		own = append(own, "user = root") // mariadbd refuses to run as root unless told to
	}
	own = append(own, extra...)
	if err := os.WriteFile(m.cnf, []byte(tlsSection+"\n"+strings.Join(own, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *mariaDB) socket() string { return filepath.Join(m.dir, "mysql.sock") }

// installMariaDBs creates the data directories, in parallel: each takes a few seconds.
func installMariaDBs(t *testing.T, ms ...*mariaDB) {
	t.Helper()
	// One at a time: two bootstraps at once on a loaded two-core machine once failed one of
	// them, and what failed is only in the instance's error log, quoted here.
	for _, m := range ms {
		cmd := exec.CommandContext(t.Context(), m.bins.install, "--defaults-file="+m.cnf,
			"--auth-root-authentication-method=normal", "--skip-test-db")
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(m.bins.server)+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			log, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			t.Fatalf("%s: %s: %v\n%s\n--- error log of %s ---\n%s", m.name, m.bins.install, err, tail(string(out), 3000), m.name, tail(string(log), 4000))
		}
	}
}

func (m *mariaDB) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bins.server, "--defaults-file="+m.cnf)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", m.name, err)
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			t.Logf("--- error log of %s ---\n%s", m.name, tail(string(b), 4000))
		}
		m.stop()
	})
	waitFor(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-m.done:
			m.done <- err
			b, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			t.Fatalf("%s exited: %v\n%s", m.name, err, tail(string(b), 3000))
		default:
		}
		_, err := m.query("SELECT 1")
		return err == nil, fmt.Sprintf("%s not ready: %v", m.name, err)
	})
}

func (m *mariaDB) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// query runs sql as root over the socket and returns its output without headers.
func (m *mariaDB) query(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, m.bins.client, "--no-defaults", "--socket="+m.socket(), "--user=root",
		"--batch", "--skip-column-names", "--execute="+sql).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("%s: %w: %s", m.name, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// queryTLS logs in as user over TCP with a client certificate.
func (m *mariaDB) queryTLS(user, ca, cert, key, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, m.bins.client, "--no-defaults", "--host=127.0.0.1", "--port="+m.port, "--user="+user,
		"--ssl-ca="+ca, "--ssl-cert="+cert, "--ssl-key="+key, "--ssl-verify-server-cert",
		"--batch", "--skip-column-names", "--execute="+sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s as %s: %w: %s", m.name, user, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (m *mariaDB) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := m.query(sql); err != nil {
		t.Fatalf("%s\n-- on %s", err, m.name)
	}
}

// replicaStatus is SHOW REPLICA STATUS as a map.
func (m *mariaDB) replicaStatus(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command(m.bins.client, "--no-defaults", "--socket="+m.socket(), "--user=root", "--vertical",
		"--execute=SHOW REPLICA STATUS").CombinedOutput()
	if err != nil {
		t.Fatalf("SHOW REPLICA STATUS on %s: %v: %s", m.name, err, out)
	}
	st := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			st[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return st
}

// replicateWith restarts the replica's I/O thread with the client certificate and key in
// files (server-cert.pem, server-key.pem), and returns the error the primary's refusal
// leaves: Last_IO_Errno and Last_IO_Error.
func (m *mariaDB) replicateWith(t *testing.T, files string) (errno, msg string) {
	t.Helper()
	m.exec(t, fmt.Sprintf("STOP REPLICA; CHANGE MASTER TO MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s'; START REPLICA;",
		filepath.Join(files, "server-cert.pem"), filepath.Join(files, "server-key.pem")))
	waitFor(t, 20*time.Second, func() (bool, string) {
		st := m.replicaStatus(t)
		errno, msg = st["Last_IO_Errno"], st["Last_IO_Error"]
		return errno != "" && errno != "0", "Last_IO_Errno " + errno
	})
	t.Logf("replica refused: %s %s", errno, msg)
	return errno, msg
}

// snippet returns the lines of out from the first that starts with from up to the first
// that starts with to (included), or up to the first empty line when to is empty.
func snippet(t *testing.T, out, from, to string) string {
	t.Helper()
	var lines []string
	for l := range strings.Lines(out) {
		l = strings.TrimRight(l, "\n")
		if len(lines) == 0 && !strings.HasPrefix(l, from) {
			continue
		}
		if to == "" && l == "" {
			break
		}
		lines = append(lines, l)
		if to != "" && strings.HasPrefix(l, to) {
			return strings.Join(lines, "\n")
		}
	}
	if len(lines) == 0 || to != "" {
		t.Fatalf("no %q ... %q in:\n%s", from, to, out)
	}
	return strings.Join(lines, "\n")
}

func waitFor(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mirrorkvRun runs the mirrorkv binary and returns its standard output and error.
func mirrorkvRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("mirrorkv %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), err
}

func mirrorkvOK(t *testing.T, args ...string) string {
	t.Helper()
	out, err := mirrorkvRun(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}
