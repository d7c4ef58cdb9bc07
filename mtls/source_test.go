package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

func TestNewSource_FailsClosed(t *testing.T) {
	rca, other := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "stranger")
	good := rca.Member("m")
	revoked := rca.Member("gone")
	rca.Revoke(revoked)
	crlRevoked := rca.WriteCRL("revoked.crl")
	garbage := pkitest.WriteFile(t, tempPath(t, "garbage.pem"), []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	leafAsCA := pkitest.WriteFile(t, tempPath(t, "leaf-as-ca.pem"), good.CertPEM)
	foreignCRL := rca.WriteFile("foreign.crl", rca.ForeignCRL())
	sysWithCA := func() (*x509.CertPool, error) { p := x509.NewCertPool(); p.AddCert(rca.Cert); return p, nil }
	cases := []struct {
		name     string
		cfg      func(c *Config)
		want     reason.Code
		file     string // the message must name this file
		contains string
	}{
		{"missing cert file", func(c *Config) { c.CertFile = "/nonexistent/cert.pem" }, reason.BadCredentials, "/nonexistent/cert.pem", "no such file"},
		{"corrupt cert", func(c *Config) { c.CertFile = garbage }, reason.BadCredentials, garbage, "certificate"},
		{"corrupt key", func(c *Config) { c.KeyFile = garbage }, reason.BadCredentials, garbage, "private key"},
		{"key of another cert", func(c *Config) { c.KeyFile = rca.Member("x").KeyPath }, reason.KeyMismatch, "", "does not match"},
		{"expired own cert", func(c *Config) { l := rca.Expired("m"); c.CertFile, c.KeyFile = l.CertPath, l.KeyPath }, reason.CertExpired, "", "expired"},
		{"not yet valid own cert", func(c *Config) { l := rca.NotYetValid("m"); c.CertFile, c.KeyFile = l.CertPath, l.KeyPath }, reason.CertNotYetValid, "", "valid only from"},
		{"own cert from another CA", func(c *Config) { l := other.Member("m"); c.CertFile, c.KeyFile = l.CertPath, l.KeyPath }, reason.UnknownCA, "", "does not chain"},
		{"own cert clientAuth only", func(c *Config) { l := rca.ClientOnly("m"); c.CertFile, c.KeyFile = l.CertPath, l.KeyPath }, reason.ClientCertOnMemberPort, "", "client certificate"},
		{"own cert revoked", func(c *Config) { c.CertFile, c.KeyFile, c.CRLFile = revoked.CertPath, revoked.KeyPath, crlRevoked }, reason.Revoked, "", "listed in"},
		{"leaf in the CA bundle", func(c *Config) { c.CAFile = leafAsCA }, reason.BadCredentials, leafAsCA, "not a CA certificate"},
		{"CRL not signed by the CA", func(c *Config) { c.CRLFile = foreignCRL }, reason.CRLInvalid, foreignCRL, "not signed by any CA"},
		{"corrupt CRL", func(c *Config) { c.CRLFile = garbage }, reason.CRLInvalid, garbage, "CRL"},
		{"replication CA in the system store", func(c *Config) { c.SystemRoots = sysWithCA }, reason.PublicCA, "", "would be authorised for replication"},
		{"TLS 1.1 minimum", func(c *Config) { c.MinVersion = tls.VersionTLS11 }, reason.ProtocolTooOld, "", "never older"},
		{"CBC suite", func(c *Config) { c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA} }, reason.NoCommonCipher, "", "AES-GCM"},
		{"no key file", func(c *Config) { c.KeyFile = "" }, reason.BadCredentials, "", "no key file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Port: PortMember, CertFile: good.CertPath, KeyFile: good.KeyPath, CAFile: rca.CertPath, SystemRoots: noSystemRoots}
			tc.cfg(&cfg)
			s, err := NewSource(cfg, nil)
			if err == nil {
				t.Fatalf("NewSource accepted it (leaf %v)", s.LeafNotAfter())
			}
			ce, ok := errors.AsType[*CredentialError](err)
			if !ok || ce.Reason != tc.want {
				t.Fatalf("NewSource error %v: want a CredentialError with reason %d", err, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.contains) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line naming %q and saying %q", msg, tc.file, tc.contains)
			}
		})
	}
	t.Run("client CA in the system store", func(t *testing.T) {
		cca := pkitest.NewCA(t, "clients")
		sysWithClientCA := func() (*x509.CertPool, error) { p := x509.NewCertPool(); p.AddCert(cca.Cert); return p, nil }
		cfg := Config{Port: PortClient, CertFile: good.CertPath, KeyFile: good.KeyPath, CAFile: cca.CertPath, SystemRoots: sysWithClientCA}
		_, err := NewSource(cfg, nil)
		if ce, ok := errors.AsType[*CredentialError](err); !ok || ce.Reason != reason.PublicCA || !strings.Contains(err.Error(), "client") {
			t.Fatalf("client port with a system-trusted client CA: %v; want reason PublicCA", err)
		}
	})
	t.Run("own certificate of another group", func(t *testing.T) {
		l := rca.Issue(pkitest.Spec{CN: "m", Group: "elsewhere"})
		cfg := Config{Port: PortMember, CertFile: l.CertPath, KeyFile: l.KeyPath, CAFile: rca.CertPath, SystemRoots: noSystemRoots, Group: "mirrorkv"}
		_, err := NewSource(cfg, nil)
		if ce, ok := errors.AsType[*CredentialError](err); !ok || ce.Reason != reason.WrongGroup || !strings.Contains(err.Error(), "elsewhere") {
			t.Fatalf("member certificate of group elsewhere on a member of group mirrorkv: %v; want reason WrongGroup naming it", err)
		}
	})
	t.Run("public CA with explicit override", func(t *testing.T) {
		cfg := Config{Port: PortMember, CertFile: good.CertPath, KeyFile: good.KeyPath, CAFile: rca.CertPath, SystemRoots: sysWithCA, AllowPublicCA: true}
		if _, err := NewSource(cfg, nil); err != nil {
			t.Fatalf("NewSource with AllowPublicCA: %v", err)
		}
	})
	t.Run("DER CA and DER CRL", func(t *testing.T) {
		ca := rca.WriteFile("ca.der", rca.Cert.Raw)
		crl := rca.WriteFile("crl.der", rca.CRLDER())
		cfg := Config{Port: PortMember, CertFile: good.CertPath, KeyFile: good.KeyPath, CAFile: ca, CRLFile: crl, SystemRoots: noSystemRoots}
		if _, err := NewSource(cfg, nil); err != nil {
			t.Fatalf("NewSource with DER files: %v", err)
		}
	})
}

func TestCheckSharedCA(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	both := pkitest.Bundle(t, tempPath(t, "both.pem"), cca, rca)
	cases := []struct {
		name           string
		member, client string
		wantErr        bool
	}{
		{"separate CAs", rca.CertPath, cca.CertPath, false},
		{"same CA", rca.CertPath, rca.CertPath, true},
		{"overlapping bundles", rca.CertPath, both, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSharedCA(tc.member, tc.client)
			if (err != nil) != tc.wantErr {
				t.Fatalf("CheckSharedCA = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && Explain(err).Code != reason.SharedCA {
				t.Errorf("reason %v, want SharedCA", Explain(err).Code)
			}
		})
	}
}

func TestSource_ReloadRefusesBrokenFiles(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	good := rca.Member("m")
	dir := t.TempDir()
	certPath := pkitest.WriteFile(t, dir+"/cert.pem", good.CertPEM)
	keyPath := pkitest.WriteFile(t, dir+"/key.pem", good.KeyPEM)
	crlPath := pkitest.WriteFile(t, dir+"/crl.pem", rca.CRLPEM())
	log := newReasonLog()
	s := sourceFor(t, PortMember, &pkitest.Leaf{CertPath: certPath, KeyPath: keyPath}, rca.CertPath, crlPath, log.logger())
	before := s.LeafNotAfter()
	expired := rca.Expired("m")
	other := pkitest.NewCA(t, "stranger").Member("m")
	cases := []struct {
		name  string
		write func()
		want  reason.Code
	}{
		{"corrupt certificate", func() { pkitest.WriteFile(t, certPath, []byte("garbage")) }, reason.BadCredentials},
		{"key mismatch", func() { pkitest.WriteFile(t, certPath, rca.Member("n").CertPEM) }, reason.KeyMismatch},
		{"expired", func() { pkitest.WriteFile(t, certPath, expired.CertPEM); pkitest.WriteFile(t, keyPath, expired.KeyPEM) }, reason.CertExpired},
		{"unknown CA", func() { pkitest.WriteFile(t, certPath, other.CertPEM); pkitest.WriteFile(t, keyPath, other.KeyPEM) }, reason.UnknownCA},
		{"CRL not signed by the CA", func() { pkitest.WriteFile(t, crlPath, rca.ForeignCRL()) }, reason.CRLInvalid},
		{"CRL file gone", func() { os.Remove(crlPath) }, reason.BadCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.write()
			if err := s.Reload(); err == nil {
				t.Fatal("Reload accepted broken material")
			}
			if got := log.next(t); got != tc.want {
				t.Errorf("logged reason %d, want %d", got, tc.want)
			}
			if s.LeafNotAfter() != before {
				t.Error("the old certificate is no longer in force")
			}
			// Put the good files back for the next case.
			pkitest.WriteFile(t, certPath, good.CertPEM)
			pkitest.WriteFile(t, keyPath, good.KeyPEM)
			pkitest.WriteFile(t, crlPath, rca.CRLPEM())
		})
	}
}
