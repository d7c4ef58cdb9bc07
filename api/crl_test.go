package api_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// crlBody is a POST /v1/crl body holding the PEM CRL at path.
func crlBody(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(wire.CRLPush{CRL: string(data)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// POST /v1/crl: admin only, JSON only, primary only; a CRL the group refuses comes back
// with its reason and a 4xx status.
func TestPushCRL(t *testing.T) {
	f := newFixture(t, api.Config{})
	body := crlBody(t, f.srv.PKI.CRL(t, time.Now().Add(24*time.Hour), f.srv.PKI.Leaf(t, "eve", "readwrite")))

	t.Run("admin", func(t *testing.T) {
		r := f.do(t, "admin", "POST", "/v1/crl", body)
		f.want(t, r, http.StatusOK)
		var got wire.CRLPushed
		if err := json.Unmarshal(r.body, &got); err != nil || got.Port != "client" || got.Revoked != 1 || got.Number == "" {
			t.Fatalf("answer %s (%v), want the client port, its number and 1 revoked", r.body, err)
		}
		if n := len(f.srv.Group.CRLs()); n != 1 {
			t.Fatalf("the group holds %d CRLs, want 1", n)
		}
	})
	for _, role := range []string{"", "none", "readonly", "readwrite"} {
		t.Run("refused to "+role, func(t *testing.T) {
			f.want(t, f.do(t, role, "POST", "/v1/crl", body), http.StatusForbidden)
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		f.want(t, f.do(t, "admin", "POST", "/v1/crl", body, "Content-Type", "application/pkix-crl"), http.StatusUnsupportedMediaType)
	})
	t.Run("not the primary", func(t *testing.T) {
		f.srv.Group.SetPrimaryURL("https://10.0.0.2:8001")
		f.srv.Group.Fail(reason.Wrap(reason.NotPrimary, errors.New("a standby")))
		defer f.srv.Group.Fail(nil)
		r := f.do(t, "admin", "POST", "/v1/crl", body)
		f.want(t, r, http.StatusServiceUnavailable)
		if got := r.header.Get(wire.HeaderPrimary); got != "https://10.0.0.2:8001" {
			t.Errorf("%s = %q, want the primary's URL", wire.HeaderPrimary, got)
		}
	})
	for _, tc := range []struct {
		name   string
		code   reason.Code
		status int
	}{
		{"unknown signer", reason.CRLUnknownSigner, http.StatusUnprocessableEntity},
		{"older", reason.CRLOlder, http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.srv.Group.SetCRLCheck(func([]byte) (string, error) { return "", reason.Wrap(tc.code, errors.New("refused")) })
			defer f.srv.Group.SetCRLCheck(nil)
			before := len(f.srv.Group.CRLs())
			r := f.do(t, "admin", "POST", "/v1/crl", body)
			f.want(t, r, tc.status)
			if we := r.wireError(t); reason.Code(we.Reason.Code) != tc.code || we.Fix == "" {
				t.Errorf("error %+v, want reason %s with a fix", we, tc.code)
			}
			if after := len(f.srv.Group.CRLs()); after != before {
				t.Errorf("the group holds %d CRLs after the refusal, want %d", after, before)
			}
		})
	}
	for _, tc := range []struct{ name, body, want string }{
		{"garbage", "garbage", "decode the body"},
		{"no CRL", `{"crl":""}`, "no PEM X509 CRL block"},
		{"a certificate", `{"crl":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`, "no PEM X509 CRL block"},
		{"broken CRL", `{"crl":"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"}`, "parse the CRL"},
		{"unknown field", `{"crl":"","port":"member"}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "admin", "POST", "/v1/crl", tc.body)
			f.want(t, r, http.StatusBadRequest)
			if we := r.wireError(t); !strings.Contains(we.Error, tc.want) || reason.Code(we.Reason.Code) != reason.CRLInvalid {
				t.Errorf("error %+v, want crl-invalid mentioning %q", we, tc.want)
			}
		})
	}
}

// FuzzDecodeCRLPush feeds the push body parser anything: it never panics, and what it
// accepts is the DER of one CRL.
func FuzzDecodeCRLPush(f *testing.F) {
	f.Add([]byte(`{"crl":""}`))
	f.Add([]byte(`{"crl":"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"}`))
	f.Add([]byte(`{"crl":"x"}{"crl":"y"}`))
	f.Add([]byte("garbage"))
	if data, err := os.ReadFile(apitest.NewPKI(f).CRL(f, time.Now().Add(time.Hour))); err == nil {
		valid, _ := json.Marshal(wire.CRLPush{CRL: string(data)})
		f.Add(valid)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		der, err := api.DecodeCRLPush(bytes.NewReader(body))
		if err != nil {
			if der != nil {
				t.Fatal("DER returned with an error")
			}
			return
		}
		var p wire.CRLPush
		if json.Unmarshal(body, &p) != nil {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		if b, _ := pem.Decode([]byte(p.CRL)); b == nil || !bytes.Equal(b.Bytes, der) {
			t.Fatalf("returned DER that is not the body's CRL block")
		}
	})
}
