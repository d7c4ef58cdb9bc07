package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// lintFixture holds the CAs and keys the lint cases draw on.
type lintFixture struct {
	ca, other *CA
	caPEM     []byte
	key       crypto.Signer
	rsa2048   *rsa.PrivateKey
}

func newLintFixture(t *testing.T) *lintFixture {
	t.Helper()
	fx := &lintFixture{ca: newTestCA(t, CAOptions{Name: "lint CA"}), other: newTestCA(t, CAOptions{Name: "other CA"}), key: mustKey(t)}
	fx.caPEM = pemCert(fx.ca.cert)
	var err error
	if fx.rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	return fx
}

// leaf signs a member template changed by mutate with the fixture CA.
func (fx *lintFixture) leaf(t *testing.T, mutate func(*x509.Certificate)) []byte {
	t.Helper()
	tmpl := memberTemplate("m1")
	if mutate != nil {
		mutate(tmpl)
	}
	_, p := signWith(t, tmpl, fx.ca.cert, fx.key.Public(), fx.ca.key)
	return p
}

// input is a lint input for cert against the fixture CA, at t0, with no system roots.
func (fx *lintFixture) input(cert []byte) LintInput {
	return LintInput{Cert: cert, CA: fx.caPEM, Now: t0, Kind: KindMember,
		SystemRoots: func() (*x509.CertPool, error) { return x509.NewCertPool(), nil }}
}

type lintCase struct {
	name   string
	input  func(t *testing.T, fx *lintFixture) LintInput
	want   []Finding // Rule and Severity must appear
	absent []string  // rules that must not appear
	ok     bool      // no errors at all
}

func TestLint(t *testing.T) {
	fx := newLintFixture(t)
	for _, tc := range lintCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := Lint(tc.input(t, fx))
			for _, w := range tc.want {
				if !hasFinding(got, w.Rule, w.Severity) {
					t.Errorf("want %s %s; got %+v", w.Severity, w.Rule, got)
				}
			}
			for _, a := range tc.absent {
				for _, f := range got {
					if f.Rule == a {
						t.Errorf("unexpected finding %+v", f)
					}
				}
			}
			if tc.ok == HasErrors(got) {
				t.Errorf("HasErrors = %v, want %v: %+v", HasErrors(got), !tc.ok, got)
			}
			for _, f := range got {
				if f.Severity != SeverityInfo && f.Fix == "" {
					t.Errorf("finding %s has no fix", f.Rule)
				}
			}
		})
	}
}

func lintCases() []lintCase {
	cases := append(usageCases(), validityCases()...)
	cases = append(cases, chainCases()...)
	cases = append(cases, groupCases()...)
	return append(cases, crlCases()...)
}

func usageCases() []lintCase {
	member := func(mut func(*x509.Certificate)) func(*testing.T, *lintFixture) LintInput {
		return func(t *testing.T, fx *lintFixture) LintInput { return fx.input(fx.leaf(t, mut)) }
	}
	asClient := func(mut func(*x509.Certificate)) func(*testing.T, *lintFixture) LintInput {
		return func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, mut))
			in.Kind = KindClient
			return in
		}
	}
	serverOnly := func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }
	clientOnly := func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }
	return []lintCase{
		{name: "good member", input: member(nil), ok: true, absent: []string{"ext-key-usage", "key-usage"}},
		{name: "no EKU extension is fine", input: member(func(c *x509.Certificate) { c.ExtKeyUsage = nil }), ok: true,
			want: []Finding{{Rule: "ext-key-usage", Severity: SeverityInfo}}},
		{name: "EKU any is fine", input: member(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny} }), ok: true},
		{name: "member without clientAuth (web server cert)", input: member(serverOnly),
			want: []Finding{{Rule: "ext-key-usage", Severity: SeverityError}}},
		{name: "member without serverAuth", input: member(clientOnly),
			want: []Finding{{Rule: "ext-key-usage", Severity: SeverityError}}},
		{name: "client with clientAuth only", input: asClient(func(c *x509.Certificate) {
			clientOnly(c)
			c.URIs = []*url.URL{AccessReadOnly.URI()}
		}), ok: true, want: []Finding{{Rule: "client-access", Severity: SeverityInfo}}},
		{name: "client without a role URI", input: asClient(clientOnly),
			want: []Finding{{Rule: "client-access", Severity: SeverityError}}},
		{name: "client with a role URI in another case", input: asClient(func(c *x509.Certificate) {
			clientOnly(c)
			c.URIs = []*url.URL{{Scheme: "urn", Opaque: "MirrorKV:Role:ADMIN"}}
		}), ok: true, want: []Finding{{Rule: "client-access", Severity: SeverityInfo}}},
		{name: "client without clientAuth", input: asClient(serverOnly),
			want: []Finding{{Rule: "ext-key-usage", Severity: SeverityError}}},
		{name: "client with unknown role URI", input: asClient(func(c *x509.Certificate) {
			c.URIs = []*url.URL{{Scheme: "urn", Opaque: "mirrorkv:role:root"}}
		}), want: []Finding{{Rule: "client-access", Severity: SeverityError}}},
		{name: "keyUsage without digitalSignature", input: member(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }),
			want: []Finding{{Rule: "key-usage", Severity: SeverityError}}},
		{name: "no keyUsage extension is fine", input: member(func(c *x509.Certificate) { c.KeyUsage = 0 }), ok: true, absent: []string{"key-usage"}},
		{name: "RSA member without keyEncipherment", input: rsaMember(x509.KeyUsageDigitalSignature), ok: true,
			want: []Finding{{Rule: "key-usage", Severity: SeverityWarning}}},
		{name: "RSA member with keyEncipherment", input: rsaMember(x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment), ok: true,
			absent: []string{"key-usage"}},
		{name: "Netscape cert type SSL Server only", input: member(nsCertType(0x40)),
			want: []Finding{{Rule: "netscape-cert-type", Severity: SeverityError}}},
		{name: "Netscape cert type SSL Client and Server", input: member(nsCertType(0xc0)), ok: true, absent: []string{"netscape-cert-type"}},
		{name: "empty CN", input: member(func(c *x509.Certificate) { c.Subject = pkix.Name{Organization: []string{"Acme"}} }),
			want: []Finding{{Rule: "empty-cn", Severity: SeverityError}}},
	}
}

func groupCases() []lintCase {
	member := func(group string, uris ...*url.URL) func(*testing.T, *lintFixture) LintInput {
		return func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, func(c *x509.Certificate) { c.URIs = uris }))
			in.Group = group
			return in
		}
	}
	g1, g2 := GroupURI("g1"), GroupURI("g2")
	return []lintCase{
		{name: "member of the group asked for", input: member("g1", g1), ok: true, want: []Finding{{Rule: "group", Severity: SeverityInfo}}},
		{name: "member of any group", input: member("", g2), ok: true, want: []Finding{{Rule: "group", Severity: SeverityInfo}}},
		{name: "member group URI in another case", input: member("g1", &url.URL{Scheme: "urn", Opaque: "MirrorKV:Group:g1"}), ok: true},
		{name: "member of another group", input: member("g1", g2), want: []Finding{{Rule: "group", Severity: SeverityError}}},
		{name: "member of no group", input: member(""), want: []Finding{{Rule: "group", Severity: SeverityError}}},
		{name: "member of two groups", input: member("", g1, g2), want: []Finding{{Rule: "group", Severity: SeverityError}}},
		{name: "group IDs compare exactly", input: member("g1", GroupURI("G1")), want: []Finding{{Rule: "group", Severity: SeverityError}}},
	}
}

func rsaMember(ku x509.KeyUsage) func(*testing.T, *lintFixture) LintInput {
	return func(t *testing.T, fx *lintFixture) LintInput {
		tmpl := memberTemplate("m1")
		tmpl.KeyUsage = ku
		_, p := signWith(t, tmpl, fx.ca.cert, fx.rsa2048.Public(), fx.ca.key)
		in := fx.input(p)
		in.Key = keyPEM(t, fx.rsa2048)
		return in
	}
}

// nsCertType sets the Netscape cert type bits (0x80 SSL Client, 0x40 SSL Server).
func nsCertType(bits byte) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		v, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{bits}, BitLength: 8})
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidNetscapeCertType(), Value: v})
	}
}

func validityCases() []lintCase {
	dates := func(nb, na time.Time) func(*testing.T, *lintFixture) LintInput {
		return func(t *testing.T, fx *lintFixture) LintInput {
			return fx.input(fx.leaf(t, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = nb, na }))
		}
	}
	return []lintCase{
		{name: "expired", input: dates(t0.AddDate(-1, 0, 0), t0.Add(-time.Hour)),
			want: []Finding{{Rule: "expired", Severity: SeverityError}}, absent: []string{"unknown-ca"}},
		{name: "not yet valid", input: dates(t0.Add(time.Hour), t0.AddDate(1, 0, 0)),
			want: []Finding{{Rule: "not-yet-valid", Severity: SeverityError}}, absent: []string{"unknown-ca"}},
		{name: "expiring within 30 days", input: dates(t0.AddDate(-1, 0, 0), t0.AddDate(0, 0, 10)), ok: true,
			want: []Finding{{Rule: "expiring-soon", Severity: SeverityWarning}}},
		{name: "31 days left is quiet", input: dates(t0.AddDate(-1, 0, 0), t0.AddDate(0, 0, 31)), ok: true,
			absent: []string{"expiring-soon"}},
		{name: "CA expired", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.Now = fx.ca.cert.NotAfter.Add(time.Hour)
			return in
		}, want: []Finding{{Rule: "ca-expired", Severity: SeverityError}, {Rule: "expired", Severity: SeverityError}}},
	}
}

func chainCases() []lintCase {
	return []lintCase{
		{name: "signed by another CA", input: func(t *testing.T, fx *lintFixture) LintInput {
			_, p := signWith(t, memberTemplate("m1"), fx.other.cert, fx.key.Public(), fx.other.key)
			return fx.input(p)
		}, want: []Finding{{Rule: "unknown-ca", Severity: SeverityError}}},
		{name: "bundle with old and new CA", input: func(t *testing.T, fx *lintFixture) LintInput {
			_, p := signWith(t, memberTemplate("m1"), fx.other.cert, fx.key.Public(), fx.other.key)
			in := fx.input(p)
			in.CA = append(pemCert(fx.ca.cert), pemCert(fx.other.cert)...)
			return in
		}, ok: true, absent: []string{"unknown-ca"}},
		{name: "leaf named as its CA", input: func(t *testing.T, fx *lintFixture) LintInput {
			tmpl := memberTemplate("m1")
			tmpl.Subject = fx.ca.cert.Subject
			_, p := signWith(t, tmpl, fx.ca.cert, fx.key.Public(), fx.ca.key)
			return fx.input(p)
		}, want: []Finding{{Rule: "subject-is-issuer", Severity: SeverityError}}},
		{name: "CA before leaf in the file", input: func(t *testing.T, fx *lintFixture) LintInput {
			return fx.input(append(pemCert(fx.ca.cert), fx.leaf(t, nil)...))
		}, want: []Finding{{Rule: "bundle-order", Severity: SeverityError}}},
		{name: "leaf then CA in the file is fine", input: func(t *testing.T, fx *lintFixture) LintInput {
			return fx.input(append(fx.leaf(t, nil), pemCert(fx.ca.cert)...))
		}, ok: true, absent: []string{"bundle-order", "intermediate"}},
		{name: "only a CA certificate", input: func(t *testing.T, fx *lintFixture) LintInput { return fx.input(fx.caPEM) },
			want: []Finding{{Rule: "not-leaf", Severity: SeverityError}}},
		{name: "intermediate CA in the chain", input: intermediateInput(false), ok: true,
			want: []Finding{{Rule: "intermediate", Severity: SeverityWarning}}, absent: []string{"unknown-ca"}},
		{name: "intermediate under a pathlen 0 CA", input: intermediateInput(true),
			want: []Finding{{Rule: "intermediate", Severity: SeverityWarning}, {Rule: "unknown-ca", Severity: SeverityError}}},
		{name: "member certificate given as CA", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.CA = append(in.CA, fx.leaf(t, nil)...)
			return in
		}, want: []Finding{{Rule: "ca-bundle", Severity: SeverityError}}},
		{name: "matching key", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.Key = keyPEM(t, fx.key)
			return in
		}, ok: true, absent: []string{"key-mismatch"}},
		{name: "key of another certificate", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.Key = keyPEM(t, mustKey(t))
			return in
		}, want: []Finding{{Rule: "key-mismatch", Severity: SeverityError}}},
		{name: "key file that is not a key", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.Key = fx.caPEM
			return in
		}, want: []Finding{{Rule: "key-unreadable", Severity: SeverityError}}},
		{name: "RSA 1024", input: func(t *testing.T, fx *lintFixture) LintInput {
			k, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			_, p := signWith(t, memberTemplate("m1"), fx.ca.cert, k.Public(), fx.ca.key)
			return fx.input(p)
		}, want: []Finding{{Rule: "weak-key", Severity: SeverityError}}},
		{name: "SHA-1 signature", input: sha1Input,
			want: []Finding{{Rule: "weak-signature", Severity: SeverityError}}, absent: []string{"unknown-ca"}},
		{name: "CA in the system trust store", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.SystemRoots = func() (*x509.CertPool, error) {
				p := x509.NewCertPool()
				p.AddCert(fx.ca.cert)
				return p, nil
			}
			return in
		}, want: []Finding{{Rule: "public-ca", Severity: SeverityError}}},
		{name: "unreadable certificate", input: func(_ *testing.T, fx *lintFixture) LintInput { return fx.input([]byte("hello")) },
			want: []Finding{{Rule: "cert-unreadable", Severity: SeverityError}}},
		{name: "unreadable CA bundle", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.CA = []byte("-----BEGIN NOTHING-----\n-----END NOTHING-----\n")
			return in
		}, want: []Finding{{Rule: "ca-unreadable", Severity: SeverityError}}},
	}
}

// intermediateInput: root -> intermediate -> leaf, the file holding leaf and intermediate.
// The root is the fixture CA (pathlen 0, so the chain is invalid) or one without a limit.
func intermediateInput(pathLenZero bool) func(*testing.T, *lintFixture) LintInput {
	return func(t *testing.T, fx *lintFixture) LintInput {
		root, rootKey, rootPEM := fx.ca.cert, fx.ca.key, fx.caPEM
		if !pathLenZero {
			rootKey = mustKey(t)
			rt := caTemplate("open root")
			root, rootPEM = signWith(t, rt, rt, rootKey.Public(), rootKey)
		}
		ik := mustKey(t)
		inter, ip := signWith(t, caTemplate("intermediate"), root, ik.Public(), rootKey)
		_, lp := signWith(t, memberTemplate("m1"), inter, fx.key.Public(), ik)
		in := fx.input(append(lp, ip...))
		in.CA = rootPEM
		return in
	}
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.AddDate(2, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func sha1Input(t *testing.T, fx *lintFixture) LintInput {
	rt := caTemplate("rsa root")
	root, rp := signWith(t, rt, rt, fx.rsa2048.Public(), fx.rsa2048)
	tmpl := memberTemplate("m1")
	tmpl.SignatureAlgorithm = x509.SHA1WithRSA
	_, lp := signWith(t, tmpl, root, fx.key.Public(), fx.rsa2048)
	in := fx.input(lp)
	in.CA = rp
	return in
}

func crlCases() []lintCase {
	withCRL := func(revoke bool, signer func(*lintFixture) *CA, now time.Time) func(*testing.T, *lintFixture) LintInput {
		return func(t *testing.T, fx *lintFixture) LintInput {
			p := fx.leaf(t, nil)
			certs, _ := ParseCertificates(p)
			ca := signer(fx)
			idx := &index{CRLNumber: 5}
			if revoke {
				idx.Certs = []record{{Serial: serialHex(certs[0].SerialNumber), RevokedAt: &t0}}
			}
			crl, err := ca.makeCRL(idx, 30)
			if err != nil {
				t.Fatal(err)
			}
			in := fx.input(p)
			in.CRL, in.Now = crl, now
			return in
		}
	}
	own := func(fx *lintFixture) *CA { return fx.ca }
	other := func(fx *lintFixture) *CA { return fx.other }
	return []lintCase{
		{name: "CRL that does not list it", input: withCRL(false, own, t0), ok: true, absent: []string{"revoked", "crl-signature", "crl-stale"}},
		{name: "revoked", input: withCRL(true, own, t0), want: []Finding{{Rule: "revoked", Severity: SeverityError}}},
		{name: "CRL of another CA", input: withCRL(false, other, t0), want: []Finding{{Rule: "crl-signature", Severity: SeverityError}}},
		{name: "CRL past next update", input: withCRL(false, own, t0.AddDate(0, 0, 31)),
			want: []Finding{{Rule: "crl-stale", Severity: SeverityError}}},
		{name: "CRL that is not a CRL", input: func(t *testing.T, fx *lintFixture) LintInput {
			in := fx.input(fx.leaf(t, nil))
			in.CRL = fx.caPEM
			return in
		}, want: []Finding{{Rule: "crl-unreadable", Severity: SeverityError}}},
	}
}

func TestFinding_Reason(t *testing.T) {
	for _, tc := range []struct {
		f    Finding
		want reason.Code
	}{
		// A finding of a rule the ports share carries that rule's own reason.
		{Finding{Rule: "ext-key-usage", Severity: SeverityError, code: reason.MissingServerAuth}, reason.MissingServerAuth},
		{Finding{Rule: "ext-key-usage", Severity: SeverityError, code: reason.ClientCertOnMemberPort}, reason.ClientCertOnMemberPort},
		{Finding{Rule: "ca-expired", Severity: SeverityError}, reason.CertExpired},
		{Finding{Rule: "revoked", Severity: SeverityError}, reason.Revoked},
		{Finding{Rule: "public-ca", Severity: SeverityError}, reason.PublicCA},
		{Finding{Rule: "client-access", Severity: SeverityError}, reason.NoAccess},
		{Finding{Rule: "client-access", Severity: SeverityInfo}, reason.OK},
		{Finding{Rule: "group", Severity: SeverityError}, reason.WrongGroup},
		{Finding{Rule: "key-file-mode", Severity: SeverityError}, reason.KeyFileMode},
		{Finding{Rule: "empty-cn", Severity: SeverityError}, reason.BadCredentials},
		{Finding{Rule: "ext-key-usage", Severity: SeverityInfo}, reason.OK},
	} {
		if got := tc.f.Reason(); got != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.f.Severity, tc.f.Rule, got, tc.want)
		}
	}
}
