package api_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// fakeTrust records what the /v1/tls routes hand to the member.
type fakeTrust struct {
	pushes, certs int
	refuse        error
}

func (f *fakeTrust) TLSInfo() wire.TLSInfo { return wire.TLSInfo{Member: "m1", Pushed: []string{}} }
func (f *fakeTrust) SetTrust(wire.TLSPort, []byte, []byte, []byte) error {
	f.pushes++
	return f.refuse
}
func (f *fakeTrust) NewKeyRequest() ([]byte, error) { return []byte("csr"), f.refuse }
func (f *fakeTrust) InstallCert([]byte) error {
	f.certs++
	return f.refuse
}

type tlsFixture struct {
	h              http.Handler
	trust          *fakeTrust
	admin, rw      *x509.Certificate
	caPEM, leafPEM string
}

func newTLSFixture(tb testing.TB) *tlsFixture {
	tb.Helper()
	p := apitest.NewPKI(tb)
	g := apitest.NewGroup("m1")
	f := &tlsFixture{trust: &fakeTrust{}, admin: p.Leaf(tb, "admin", "admin"), rw: p.Leaf(tb, "rw", "readwrite")}
	f.h = api.New(api.Config{Node: "m1", Trust: f.trust}, g, g, prometheus.NewRegistry(), nil).Handler()
	ca, err := os.ReadFile(p.CAFile)
	if err != nil {
		tb.Fatal(err)
	}
	f.caPEM = string(ca)
	f.leafPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.admin.Raw}))
	return f
}

func (f *tlsFixture) do(method, path string, cert *x509.Certificate, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func jsonBody(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestTLSRoutes_AdminOnly(t *testing.T) {
	f := newTLSFixture(t)
	push := jsonBody(t, wire.TrustPush{Port: wire.TLSPortMember, CA: f.caPEM})
	routes := []struct {
		method, path string
		body         []byte
	}{
		{"GET", "/v1/tls", nil},
		{"POST", "/v1/tls/trust", push},
		{"POST", "/v1/tls/csr", []byte("{}")},
		{"POST", "/v1/tls/cert", jsonBody(t, wire.CertPush{Cert: f.leafPEM})},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			if rec := f.do(r.method, r.path, f.rw, r.body); rec.Code != http.StatusForbidden {
				t.Fatalf("readwrite: %d %s, want 403", rec.Code, rec.Body)
			}
			if rec := f.do(r.method, r.path, f.admin, r.body); rec.Code != http.StatusOK {
				t.Fatalf("admin: %d %s, want 200", rec.Code, rec.Body)
			}
		})
	}
	if f.trust.pushes != 1 || f.trust.certs != 1 {
		t.Fatalf("the member got %d pushes and %d certificates, want one of each (from admin only)", f.trust.pushes, f.trust.certs)
	}
}

func TestTLSRoutes_Refusals(t *testing.T) {
	f := newTLSFixture(t)
	garbage := "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
	tests := []struct {
		name, path string
		body       []byte
		status     int
		code       reason.Code
	}{
		{"trust: not JSON", "/v1/tls/trust", []byte("-----BEGIN"), 400, reason.BadTLSPush},
		{"trust: unknown field", "/v1/tls/trust", []byte(`{"port":"member","ca":"x","cas":"y"}`), 400, reason.BadTLSPush},
		{"trust: unknown port", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "raft", CA: f.caPEM}), 400, reason.BadTLSPush},
		{"trust: empty bundle", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member"}), 400, reason.BadTLSPush},
		{"trust: garbage certificate", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member", CA: garbage}), 400, reason.BadTLSPush},
		{"trust: a leaf in the bundle", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM + f.leafPEM}), 400, reason.BadTLSPush},
		{"trust: text after the bundle", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM + "trailing"}), 400, reason.BadTLSPush},
		{"trust: a key in the bundle", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM + "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"}), 400, reason.BadTLSPush},
		{"trust: garbage CRL", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "client", CA: f.caPEM, CRL: garbage}), 400, reason.BadTLSPush},
		{"trust: garbage endorsement", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM, Endorsements: garbage}), 400, reason.BadTLSPush},
		{"trust: a leaf as endorsement", "/v1/tls/trust", jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM, Endorsements: f.leafPEM}), 400, reason.BadTLSPush},
		{"cert: a CA first", "/v1/tls/cert", jsonBody(t, wire.CertPush{Cert: f.caPEM}), 400, reason.BadTLSPush},
		{"cert: garbage", "/v1/tls/cert", jsonBody(t, wire.CertPush{Cert: "hello"}), 400, reason.BadTLSPush},
		{"cert: too many", "/v1/tls/cert", jsonBody(t, wire.CertPush{Cert: strings.Repeat(f.leafPEM, 5)}), 400, reason.BadTLSPush},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do("POST", tt.path, f.admin, tt.body)
			var body wire.Error
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.status || reason.Code(body.Reason.Code) != tt.code {
				t.Fatalf("%d %s, want %d with reason %d", rec.Code, rec.Body, tt.status, tt.code)
			}
		})
	}
	if f.trust.pushes != 0 || f.trust.certs != 0 {
		t.Fatalf("refused bodies reached the member: %d pushes, %d certificates", f.trust.pushes, f.trust.certs)
	}
	req := httptest.NewRequest("POST", "/v1/tls/trust", strings.NewReader(string(jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM}))))
	req.Header.Set("Content-Type", "text/plain")
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.admin}}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("a text/plain push: %d, want 415", rec.Code)
	}
}

func TestTLSRoutes_MemberRefusals(t *testing.T) {
	for _, code := range []reason.Code{reason.NoPendingKey, reason.PendingKeyMismatch, reason.TrustRefused} {
		t.Run(code.Name(), func(t *testing.T) {
			f := newTLSFixture(t)
			f.trust.refuse = reason.Wrap(code, pki.ErrNoCertificate)
			rec := f.do("POST", "/v1/tls/cert", f.admin, jsonBody(t, wire.CertPush{Cert: f.leafPEM}))
			if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), `"code":`+strconv.Itoa(int(code))) {
				t.Fatalf("%d %s, want 409 with reason %d", rec.Code, rec.Body, code)
			}
		})
	}
}

func TestTLSRoutes_UnendorsedCA(t *testing.T) {
	f := newTLSFixture(t)
	f.trust.refuse = reason.Wrap(reason.CANotEndorsed, pki.ErrNotEndorsed)
	rec := f.do("POST", "/v1/tls/trust", f.admin, jsonBody(t, wire.TrustPush{Port: "member", CA: f.caPEM}))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"code":`+strconv.Itoa(int(reason.CANotEndorsed))) {
		t.Fatalf("%d %s, want 403 with reason %d", rec.Code, rec.Body, reason.CANotEndorsed)
	}
}

// FuzzTrustPush and FuzzCertPush feed any body to the push routes: the member may only ever
// receive well-formed PEM of the kind the route takes, and nothing ends in a 500.
func FuzzTrustPush(f *testing.F) {
	fx := newTLSFixture(f)
	f.Add(jsonBody(f, wire.TrustPush{Port: "member", CA: fx.caPEM}))
	f.Add(jsonBody(f, wire.TrustPush{Port: "client", CA: fx.caPEM + fx.leafPEM, CRL: "x"}))
	f.Add([]byte(`{"port":"member","ca":"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----"}`))
	f.Add([]byte(`{}`))
	f.Add(jsonBody(f, wire.TrustPush{Port: "member", CA: fx.caPEM, Endorsements: fx.caPEM}))
	f.Fuzz(func(t *testing.T, body []byte) {
		before := fx.trust.pushes
		rec := fx.do("POST", "/v1/tls/trust", fx.admin, body)
		checkFuzzAnswer(t, rec, fx.trust.pushes > before)
	})
}

func FuzzCertPush(f *testing.F) {
	fx := newTLSFixture(f)
	f.Add(jsonBody(f, wire.CertPush{Cert: fx.leafPEM}))
	f.Add(jsonBody(f, wire.CertPush{Cert: fx.caPEM}))
	f.Add([]byte(`{"cert":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		before := fx.trust.certs
		rec := fx.do("POST", "/v1/tls/cert", fx.admin, body)
		checkFuzzAnswer(t, rec, fx.trust.certs > before)
	})
}

func checkFuzzAnswer(t *testing.T, rec *httptest.ResponseRecorder, reached bool) {
	t.Helper()
	switch {
	case rec.Code >= 500:
		t.Fatalf("%d %s", rec.Code, rec.Body)
	case reached != (rec.Code == http.StatusOK):
		t.Fatalf("status %d, but the member was reached: %t", rec.Code, reached)
	case rec.Code == http.StatusBadRequest && !strings.Contains(rec.Body.String(), `"code":160`):
		t.Fatalf("a refused push without reason 160: %s", rec.Body)
	}
}
