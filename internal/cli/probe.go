package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/spf13/cobra"
)

type probeOptions struct {
	CAFile, CertFile, KeyFile, ServerName string
	StartTLS                              string
	JSON                                  bool
	Timeout, Wait                         time.Duration
}

func newProbeCmd(e *env) *cobra.Command {
	var o probeOptions
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT",
		Short: "show what a TLS port presents and whether it accepts your certificate",
		Long: `probe connects like openssl s_client: it prints the certificate chain the server sends,
the negotiated TLS version, cipher suite and ALPN protocol, whether the server asks for a
client certificate and from which CAs, and whether it accepted yours. With TLS 1.3 a
refusal arrives after the handshake, so probe waits for it. A failure is explained with
a reason code (docs/reasons.md) and what to do.

It exits 0 only when the server's chain verified against --ca, the mutual handshake
succeeded and the server kept the connection. Without --ca the chain is still shown.`,
		Example: `  mirrorkv probe 10.0.0.1:7000 --ca ca.crt --cert m1.crt --key m1.key
  mirrorkv probe db.example:8443 --ca ca.crt --cert alice.crt --key alice.key --json
  mirrorkv probe db1:3306 --starttls mysql --ca ca.pem --cert client-cert.pem --key client-key.pem`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error { return runProbe(e, o, a[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.CAFile, "ca", "", "CA bundle to verify the server's certificate with")
	f.StringVar(&o.CertFile, "cert", "", "certificate to present (member or client)")
	f.StringVar(&o.KeyFile, "key", "", "private key of --cert")
	f.StringVar(&o.ServerName, "server-name", "", "name to verify and send as SNI (default: HOST)")
	f.StringVar(&o.StartTLS, "starttls", "", "upgrade in-band first, as openssl s_client -starttls: mysql (MySQL, MariaDB)")
	f.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Second, "connect and handshake timeout")
	f.DurationVar(&o.Wait, "wait", time.Second, "how long to wait after the handshake for a refusal")
	return cmd
}

func runProbe(e *env, o probeOptions, addr string) error {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return usagef("probe: give both --cert and --key, or neither")
	}
	rep, err := mtls.Probe(e.ctx, addr, mtls.ProbeOptions{CAFile: o.CAFile, CertFile: o.CertFile,
		KeyFile: o.KeyFile, ServerName: o.ServerName, Timeout: o.Timeout, Wait: o.Wait, StartTLS: o.StartTLS})
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write probe report: %w", err)
		}
	} else {
		printProbe(e.stdout, rep)
	}
	if rep.OK() {
		return nil
	}
	msg := rep.Summary
	if rep.Fix != "" {
		msg += "; " + rep.Fix
	}
	return errors.New(msg)
}

func printProbe(w io.Writer, r *mtls.ProbeReport) {
	fmt.Fprintf(w, "probe %s\n", r.Addr)
	if r.StartTLS != "" {
		fmt.Fprintf(w, "starttls:    %s; server: %s\n", r.StartTLS, probeOrNone(r.Server))
	}
	if len(r.Chain) == 0 {
		fmt.Fprintln(w, "certificate chain: none received")
	} else {
		fmt.Fprintln(w, "certificate chain sent by the server:")
	}
	for i, c := range r.Chain {
		fmt.Fprintf(w, "  %d subject: %s\n    issuer:  %s\n    valid:   %s to %s\n", i, c.Subject, c.Issuer,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
		if sans := append(append([]string(nil), c.DNSNames...), c.IPs...); len(sans) > 0 {
			fmt.Fprintf(w, "    SANs:    %s\n", strings.Join(sans, " "))
		}
	}
	if r.Handshake {
		fmt.Fprintf(w, "protocol:    %s, %s, ALPN %s\n", r.Version, r.CipherSuite, probeOrNone(r.ALPN))
	}
	switch {
	case r.ClientCertRequested:
		fmt.Fprintf(w, "client cert: requested; acceptable CAs: %s\n", probeOrNone(strings.Join(r.AcceptableCAs, "; ")))
	case r.Handshake:
		fmt.Fprintln(w, "client cert: not requested")
	}
	fmt.Fprintf(w, "sent ours:   %s\n", probeYesNo(r.ClientCertSent))
	fmt.Fprintf(w, "verified:    %s\n", probeYesNo(r.Verified))
	accepted := probeYesNo(r.Accepted)
	if r.MemberAck {
		accepted += " (member acknowledgement received)"
	}
	fmt.Fprintf(w, "accepted:    %s\n", accepted)
	fmt.Fprintf(w, "result:      %s (reason %d %s)\n", r.Summary, int(r.Code), r.Code.Name())
	if r.Fix != "" && !r.OK() {
		fmt.Fprintf(w, "fix:         %s\n", r.Fix)
	}
}

func probeYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func probeOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
