package node

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
)

func TestNode_DebugListen(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	cfg := testMember(t, rca, cca, rca.Member("m1"))
	cfg.DebugListen = "127.0.0.1:0"
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	base := "http://" + n.debug.Addr().String()

	t.Run("index", func(t *testing.T) {
		resp, err := http.Get(base + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
			t.Fatalf("GET /debug/pprof/ = %d %.200q, want 200 listing the profiles", resp.StatusCode, body)
		}
	})
	t.Run("rates", func(t *testing.T) {
		for query, want := range map[string]int{"block=0&mutex=0": http.StatusNoContent, "block=-1": http.StatusBadRequest} {
			resp, err := http.Post(base+"/debug/pprof/rates?"+query, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("POST rates?%s = %d, want %d", query, resp.StatusCode, want)
			}
		}
	})
	t.Run("not on the client port", func(t *testing.T) {
		if n.http.Handler == nil {
			t.Fatal("no client handler")
		}
		req, _ := http.NewRequest(http.MethodGet, "/debug/pprof/", nil)
		if h, pattern := http.DefaultServeMux.Handler(req); pattern != "" {
			t.Fatalf("DefaultServeMux serves /debug/pprof/ (%T): the handlers must stay on the debug mux", h)
		}
	})
	t.Run("closed with the node", func(t *testing.T) {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.Get(base + "/debug/pprof/"); err == nil {
			resp.Body.Close()
			t.Fatal("debug port still answers after Close")
		}
	})
}
