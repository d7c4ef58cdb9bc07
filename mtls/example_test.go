package mtls_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/reason"
)

// The member port: one Source serves both directions. Accept returns only authorised
// members; Dial fails with a reason when either side refuses.
func ExampleSource_Listen() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	src, err := mtls.NewSource(mtls.Config{
		Port:     mtls.PortMember,
		CertFile: "/etc/mirrorkv/member.crt",
		KeyFile:  "/etc/mirrorkv/member.key",
		CAFile:   "/etc/mirrorkv/ca.crt", // may hold the old and the new CA during a rotation
		CRLFile:  "/etc/mirrorkv/crl.pem",
		Policy:   mtls.PolicyDN,
		Members:  map[string]string{"10.0.0.2:7000": "CN=m2,O=mirrorkv"},
	}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // names the file and what to do
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Watch(ctx, 2*time.Second) // reload on file change; call src.Reload on SIGHUP

	inner, err := net.Listen("tcp", ":7000")
	if err != nil {
		return
	}
	ln := src.Listen(inner) // hand this to the raft stream layer
	defer ln.Close()

	conn, err := src.Dial(ctx, "10.0.0.2:7000")
	if he, ok := errors.AsType[*mtls.HandshakeError](err); ok {
		fmt.Println("refused:", he.Reason, mtls.Explain(err).Fix)
		return
	}
	if err == nil {
		conn.Close()
	}
}

// The client port: plain HTTP gets a 400, clients need a certificate from the client CA,
// and handlers see the client certificate in r.TLS.
func ExampleSource_HTTPSListener() {
	src, err := mtls.NewSource(mtls.Config{
		Port:     mtls.PortClient,
		CertFile: "/etc/mirrorkv/member.crt",
		KeyFile:  "/etc/mirrorkv/member.key",
		CAFile:   "/etc/mirrorkv/client-ca.crt",
	}, nil)
	if err != nil {
		return
	}
	inner, err := net.Listen("tcp", ":8443")
	if err != nil {
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello", r.TLS.PeerCertificates[0].Subject.CommonName)
	})}
	_ = srv.Serve(src.HTTPSListener(inner))
}

// Explain turns a handshake error into a reason and advice.
func ExampleExplain() {
	err := &mtls.HandshakeError{Reason: reason.MissingClientAuth, Peer: "10.0.0.2:7000", Err: errors.New("remote error: tls: bad certificate")}
	d := mtls.Explain(err)
	fmt.Println(int(d.Code), d.Code.Name())
	fmt.Println(d.Fix)
	// Output:
	// 105 missing-client-auth
	// reissue it with `mirrorkv ca issue` (member certificates carry serverAuth and clientAuth)
}

// Probe shows what a port presents and whether it accepts a certificate.
func ExampleProbe() {
	rep, err := mtls.Probe(context.Background(), "10.0.0.2:7000", mtls.ProbeOptions{
		CAFile: "ca.crt", CertFile: "m1.crt", KeyFile: "m1.key",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range rep.Chain {
		fmt.Println(c.Subject, "issued by", c.Issuer, "expires", c.NotAfter)
	}
	fmt.Println(rep.Version, rep.CipherSuite, rep.OK(), rep.Summary)
}

// CheckSharedCA refuses one CA for members and clients.
func ExampleCheckSharedCA() {
	if err := mtls.CheckSharedCA("/etc/mirrorkv/ca.crt", "/etc/mirrorkv/client-ca.crt"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
