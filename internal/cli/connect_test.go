package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
)

// result is what one CLI run left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line with the given environment and stdin.
func runCLI(t *testing.T, vars map[string]string, stdin string, argv ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{ctx: t.Context(), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return vars[k] }}
	code := run(e, argv)
	return result{code, out.String(), errOut.String()}
}

// testGroup serves the API over a fake group and returns the MIRRORKV_* environment of a
// client certificate with role ("" for none).
func testGroup(t *testing.T, role string) (*apitest.Server, map[string]string) {
	t.Helper()
	srv := apitest.Start(t, api.Config{}, nil)
	cc := srv.PKI.Client(t, "cli-"+role, role)
	return srv, map[string]string{
		"MIRRORKV_ENDPOINTS": srv.URL,
		"MIRRORKV_CACERT":    srv.PKI.CAFile,
		"MIRRORKV_CERT":      cc.CertFile,
		"MIRRORKV_KEY":       cc.KeyFile,
	}
}

func TestConnectOptions(t *testing.T) {
	srv, vars := testGroup(t, "")
	t.Run("environment", func(t *testing.T) {
		if r := runCLI(t, vars, "", "status"); r.code != ExitOK {
			t.Fatalf("status from the environment: %d %s", r.code, r.stderr)
		}
	})
	t.Run("flags win over the environment", func(t *testing.T) {
		bad := map[string]string{"MIRRORKV_ENDPOINTS": "https://127.0.0.1:1", "MIRRORKV_CACERT": "/nope", "MIRRORKV_CERT": "/nope", "MIRRORKV_KEY": "/nope"}
		r := runCLI(t, bad, "", "status", "--endpoints", srv.URL, "--cacert", vars["MIRRORKV_CACERT"],
			"--cert", vars["MIRRORKV_CERT"], "--key", vars["MIRRORKV_KEY"])
		if r.code != ExitOK {
			t.Fatalf("status with flags: %d %s", r.code, r.stderr)
		}
	})
	t.Run("missing settings are a usage error", func(t *testing.T) {
		r := runCLI(t, map[string]string{}, "", "kv", "get", "k")
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--endpoints") || !strings.Contains(r.stderr, "--cacert") {
			t.Fatalf("without settings: %d %q; want 2 naming --endpoints and --cacert", r.code, r.stderr)
		}
	})
	t.Run("unreadable CA file names it", func(t *testing.T) {
		r := runCLI(t, vars, "", "kv", "get", "k", "--cacert", "/nonexistent/ca.pem")
		if r.code != ExitFailure || !strings.Contains(r.stderr, "/nonexistent/ca.pem") {
			t.Fatalf("bad CA: %d %q; want 1 naming the file", r.code, r.stderr)
		}
	})
}
