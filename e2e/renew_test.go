package e2e

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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

// A standby's certificate renewed the way an operator does it (cert renew on the member,
// ca sign on the CA host, key then certificate moved over the files in use) is served
// within seconds, by the same process, and the member stays in its group under its DN.
func TestRenewal_MemberReloadsRenewedCertificate(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 2, ServeArgs: append([]string{"--reload-interval", "500ms"}, fastServe...)})
	target := others(g, primaryOf(t, g))[0]
	pid := target.Pid()
	work := t.TempDir()
	mirrorkv := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mirrorkv %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	newKey, csr := filepath.Join(work, "new.key"), filepath.Join(work, "new.csr")
	out := mirrorkv("cert", "renew", "--cert", target.CertFile, "--key-out", newKey, "--csr-out", csr)
	_, line, ok := strings.Cut(out, "on the CA host: mirrorkv ")
	if !ok {
		t.Fatalf("cert renew printed no ca sign step:\n%s", out)
	}
	line, _, _ = strings.Cut(line, "\n")
	sign := strings.Fields(line)
	for i, a := range sign {
		switch {
		case a == "CADIR":
			sign[i] = filepath.Join(g.PKI.Dir, "member-ca")
		case i > 0 && (sign[i-1] == "--csr" || sign[i-1] == "--out"):
			sign[i] = filepath.Join(work, a)
		}
	}
	// 200 days: a NotAfter that differs from the first certificate's.
	mirrorkv(append(sign, "--days", "200", "--yes")...)
	newCert := filepath.Join(work, "new.crt")
	renewed := readCertificate(t, newCert)
	mirrorkv("cert", "lint", newCert, "--key", newKey, "--ca", g.PKI.MemberCA, "--group", "mirrorkv")

	for _, mv := range [][2]string{{newKey, target.KeyFile}, {newCert, target.CertFile}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}

	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the member serves the renewed certificate", func() error {
		conn, err := tls.Dial("tcp", target.ClientAddr, tlsCfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0]; got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
			return fmt.Errorf("serves serial %x, want the renewed %x", got.SerialNumber, renewed.SerialNumber)
		}
		return nil
	})
	eventually(t, 15*time.Second, "the renewed member reports its new expiry and stays in sync", func() error {
		st, err := statusOf(t, g, target)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.Name != target.Name {
				continue
			}
			if m.CertNotAfter == nil || !m.CertNotAfter.Equal(renewed.NotAfter) || m.DN != pki.DNOf(renewed) {
				return fmt.Errorf("status of %s: expiry %v, DN %s; want %v, %s", m.Name, m.CertNotAfter, m.DN, renewed.NotAfter, pki.DNOf(renewed))
			}
			if m.Role != wire.RoleStandby {
				return fmt.Errorf("%s is %s (%d %s)", m.Name, m.Role, m.Reason.Code, m.Reason.Text)
			}
			return nil
		}
		return errors.New("the renewed member is missing from the status")
	})
	if _, err := clientOf(t, g, target).Put(t.Context(), "after-renewal", []byte("ok")); err != nil {
		t.Fatalf("write through the renewed member: %v", err)
	}
	if target.Pid() != pid {
		t.Fatalf("the member restarted (pid %d, was %d); a renewal needs no restart", target.Pid(), pid)
	}
}

func readCertificate(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// `member renew --all` renews every member's certificate from the CA host over the admin
// API: each member makes its own key, serves the new certificate at once, keeps its DN and
// its place in the group, and is not restarted.
func TestRenewal_MembersOverTheAdminAPI(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	pids := map[string]int{}
	for _, m := range g.Members {
		pids[m.Name] = m.Pid()
	}
	out, err := runCLI(g, "member", "renew", "--all", "--ca-dir", filepath.Join(g.PKI.Dir, "member-ca"), "--days", "100")
	if err != nil {
		t.Fatalf("member renew --all: %v\n%s", err, out)
	}
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range g.Members {
		old := readCertificate(t, m.CertFile)
		conn, err := tls.Dial("tcp", m.ClientAddr, tlsCfg)
		if err != nil {
			t.Fatalf("%s after the renewal: %v", m.Name, err)
		}
		served := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		switch {
		case served.SerialNumber.Cmp(old.SerialNumber) == 0:
			t.Errorf("%s still serves its old certificate", m.Name)
		case pki.DNOf(served) != pki.DNOf(old):
			t.Errorf("%s serves %s, want its DN %s kept", m.Name, pki.DNOf(served), pki.DNOf(old))
		case served.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey):
			t.Errorf("%s's renewed certificate carries its old key", m.Name)
		case served.NotAfter.Sub(served.NotBefore) > 101*24*time.Hour:
			t.Errorf("%s's renewed certificate lasts %s, want the 100 days asked", m.Name, served.NotAfter.Sub(served.NotBefore))
		}
		if !strings.Contains(out, m.Name+": serves "+pki.DNOf(old)) {
			t.Errorf("member renew did not report %s:\n%s", m.Name, out)
		}
		if m.Pid() != pids[m.Name] {
			t.Errorf("%s restarted; a renewal needs no restart", m.Name)
		}
	}
	c := clientOf(t, g, g.Members...)
	if _, err := c.Put(t.Context(), "after-renewal", []byte("ok")); err != nil {
		t.Fatalf("write after the renewal: %v", err)
	}
	if err := g.WaitInSync(t.Context()); err != nil {
		t.Fatalf("the group after the renewal: %v", err)
	}
}
