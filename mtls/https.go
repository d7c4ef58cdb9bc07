package mtls

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// recordTypeHandshake is the first byte of every TLS ClientHello.
const recordTypeHandshake = 0x16

type kind int

const (
	kindTLS   kind = iota // a TLS handshake record
	kindHTTP              // an HTTP/1.x request line: METHOD SP
	kindOther             // anything else: binary or an unknown text protocol
)

// sniff classifies the first bytes a peer sent. net/http only recognises a few methods
// (a plaintext DELETE or PATCH is closed without an answer), so any token of upper-case
// letters followed by a space counts as HTTP.
func sniff(b []byte) kind {
	if len(b) > 0 && b[0] == recordTypeHandshake {
		return kindTLS
	}
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			continue
		case c == ' ' && i > 0:
			return kindHTTP
		}
		return kindOther
	}
	if len(b) > 0 {
		return kindHTTP // an upper-case token cut short: still the start of a request line
	}
	return kindOther
}

type plaintextReason struct {
	Code int    `json:"code"`
	Name string `json:"name"`
	Text string `json:"text"`
}

// plaintextBody is the JSON answer to plain HTTP on the client port.
func plaintextBody() []byte {
	b, _ := json.Marshal(struct {
		Error  string          `json:"error"`
		Reason plaintextReason `json:"reason"`
		Fix    string          `json:"fix"`
	}{
		Error:  "plaintext HTTP on a TLS port",
		Reason: plaintextReason{int(reason.Plaintext), reason.Plaintext.Name(), reason.Plaintext.Text()},
		Fix:    "use https:// and a client certificate",
	})
	return b
}

// answerPlaintext writes a 400 and closes politely: half-close, then drain what the client
// sent, because closing with unread data makes TCP reset and lose the answer.
func answerPlaintext(tc *trackedConn) {
	body := plaintextBody()
	_ = tc.Conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(tc.Conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	if cw, ok := tc.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_, _ = io.CopyN(io.Discard, tc.br, 64<<10)
	}
}

// HTTPSListener wraps ln as the client port: plain HTTP (any method) gets a 400 with a JSON
// body, other plaintext is dropped, and Accept returns *tls.Conn values that have completed
// the handshake with a valid client certificate. Serve them with http.Server.Serve; the
// connection is a *tls.Conn, so handlers see r.TLS. ALPN offers http/1.1 only.
func (s *Source) HTTPSListener(ln net.Listener) net.Listener {
	return s.newListener(ln, "client", (*tlsListener).serveClient)
}

func (l *tlsListener) serveClient(raw net.Conn, done func()) {
	tc, seen := l.handshake(raw, done)
	if tc == nil {
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if !l.src.register(tc, seen) {
		return
	}
	l.deliver(tc.tls)
}
