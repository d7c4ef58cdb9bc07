package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/pkitest"
)

func TestClassify(t *testing.T) {
	refused := refusedError(t)
	for _, tc := range []struct {
		name string
		err  error
		want ErrorKind
	}{
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), Timeout},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, Timeout},
		{"refused", refused, Refused},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, Closed},
		{"eof", fmt.Errorf("read response: %w", io.EOF), Closed},
		{"alert", &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, TLS},
		{"verification", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, TLS},
		{"precondition", fmt.Errorf("put: %w", &client.Error{Status: http.StatusPreconditionFailed}), Conflict},
		{"conflict", &client.Error{Status: http.StatusConflict}, Conflict},
		{"not found", &client.Error{Status: http.StatusNotFound}, NotFound},
		{"no primary", &client.Error{Status: http.StatusServiceUnavailable}, Server},
		{"outcome unknown", &client.Error{Status: http.StatusGatewayTimeout}, Server},
		{"bad request", &client.Error{Status: http.StatusBadRequest}, Other},
		{"kind error", fmt.Errorf("etcd: %w", &KindError{Kind: Conflict, Err: errors.New("compare failed")}), Conflict},
		{"other", errors.New("something"), Other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// refusedError dials a port that was just closed.
func refusedError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("port %s accepted a connection after its listener closed; another process took it", addr)
	}
	return err
}

func TestRun_Errors(t *testing.T) {
	// The server answers by the key's last digit; a run over keys 0-9 sees every kind.
	statuses := map[byte]int{'0': 412, '1': 404, '2': 500, '3': 400, '4': 504}
	nop := NopHandler(16)
	srv := startMTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch last := r.URL.Path[len(r.URL.Path)-1]; {
		case last == '5':
			// Hangs until the client gives up; the server notices that only once the
			// body is read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case statuses[last] != 0:
			http.Error(w, `{"error":"planned"}`, statuses[last])
		default:
			nop.ServeHTTP(w, r)
		}
	}))
	c := srv.newClient(t, nil)
	res, err := Run(t.Context(), ClientTarget{c}, Config{Clients: 4, Ops: 300, Keys: 10, Timeout: 20 * time.Millisecond, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"conflict", "notfound", "5xx", "other", "timeout"} {
		if res.ErrorsByKind[kind] == 0 {
			t.Errorf("no %s errors: %v", kind, res.ErrorsByKind)
		}
	}
	if res.ErrorsByKind["5xx"] < res.ErrorsByKind["conflict"] {
		t.Errorf("500 and 504 both count as 5xx, yet fewer than the 412s: %v", res.ErrorsByKind)
	}
	var sum int64
	for _, n := range res.ErrorsByKind {
		sum += n
	}
	if sum != res.Errors || res.Ops+res.Errors != 300 || res.Ops == 0 {
		t.Errorf("%d ops, %d errors, %v by kind: want 300 in all", res.Ops, res.Errors, res.ErrorsByKind)
	}

	t.Run("tls", func(t *testing.T) {
		// A client certificate from a CA the server does not trust: the server refuses it.
		stranger := pkitest.NewCA(t, "strangers").Client("mallory")
		res, err := Run(t.Context(), ClientTarget{srv.newClient(t, stranger)}, Config{Ops: 3})
		if err != nil {
			t.Fatal(err)
		}
		if res.ErrorsByKind["tls"] != 3 {
			t.Errorf("errors %v, want 3 tls", res.ErrorsByKind)
		}
	})
	t.Run("refused", func(t *testing.T) {
		refusedAddr := refusedError(t).(*net.OpError).Addr.String()
		target := TargetFunc(func(ctx context.Context, _ Op) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", refusedAddr)
			if err == nil {
				c.Close()
			}
			return err
		})
		res, err := Run(t.Context(), target, Config{Ops: 2})
		if err != nil {
			t.Fatal(err)
		}
		if res.ErrorsByKind["refused"] != 2 {
			t.Errorf("errors %v, want 2 refused", res.ErrorsByKind)
		}
	})
}
