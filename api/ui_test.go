package api_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
)

// inline matches what a strict CSP blocks in a page: inline scripts, styles and handlers.
var inline = regexp.MustCompile(`<script>|<style|\sstyle=|\son[a-z]+=|javascript:`)

func TestUI(t *testing.T) {
	f := newFixture(t, api.Config{})
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	files := []struct {
		name, path, contentType, holds string
	}{
		{"page", "/ui", "text/html; charset=utf-8", `<script src="/ui/ui.js" defer></script>`},
		{"page with slash", "/ui/", "text/html; charset=utf-8", `<th scope="col">Role</th>`},
		{"script", "/ui/ui.js", "text/javascript; charset=utf-8", "textContent"},
		{"style", "/ui/ui.css", "text/css; charset=utf-8", "@media"},
		{"refusals", "/ui/refusals", "application/json", `"refusals":[]`},
	}
	for _, tc := range files {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "readonly", "GET", tc.path, "")
			f.want(t, r, http.StatusOK)
			if got := r.header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := r.header.Get("Content-Security-Policy"); got != csp {
				t.Errorf("Content-Security-Policy = %q, want %q", got, csp)
			}
			if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if !strings.Contains(string(r.body), tc.holds) {
				t.Errorf("body does not hold %q:\n%s", tc.holds, r.body)
			}
		})
	}
	t.Run("no inline script or style", func(t *testing.T) {
		page := string(f.do(t, "readonly", "GET", "/ui", "").body)
		if bad := inline.FindString(page); bad != "" {
			t.Errorf("the page holds %q, which the CSP would block", bad)
		}
	})
	t.Run("unknown file", func(t *testing.T) {
		for _, p := range []string{"/ui/nope.js", "/ui/index.htm", "/ui/.."} {
			if r := f.do(t, "readonly", "GET", p, ""); r.status != http.StatusNotFound {
				t.Errorf("GET %s: status %d, want 404", p, r.status)
			}
		}
	})
	t.Run("access levels", func(t *testing.T) {
		for role, want := range map[string]int{"readonly": 200, "readwrite": 200, "admin": 200, "none": 403, "superuser": 403} {
			for _, p := range []string{"/ui", "/ui/ui.js", "/ui/refusals"} {
				if r := f.do(t, role, "GET", p, ""); r.status != want {
					t.Errorf("%s GET %s: status %d, want %d", role, p, r.status, want)
				}
			}
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.srv.PKI.Pool}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(f.srv.URL + "/ui")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET /ui without a client certificate: status %d, want a TLS refusal", resp.StatusCode)
		}
	})
	t.Run("refusals shape", func(t *testing.T) {
		var sum api.RefusalSummary
		if err := json.Unmarshal(f.do(t, "readonly", "GET", "/ui/refusals", "").body, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Since.IsZero() || sum.Until.Before(sum.Since) {
			t.Errorf("window %s..%s", sum.Since, sum.Until)
		}
	})
}
