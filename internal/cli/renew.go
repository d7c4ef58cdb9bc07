package cli

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/pki"
)

type certRenewOptions struct {
	Cert, KeyOut, CSROut, KeyType string
}

func newCertRenewCmd(e *env) *cobra.Command {
	var o certRenewOptions
	cmd := &cobra.Command{
		Use:   "renew --cert FILE --key-out FILE --csr-out FILE",
		Short: "make a new key and a CSR that ask again for a certificate's subject, SANs and grant, for 'mirrorkv ca sign --renew'",
		Long: `Renew a member or client certificate without moving a private key. renew reads the
certificate, makes a new key on this host (--key-out, mode 0600) and a CSR (--csr-out) that
asks for the same subject DN, the same DNS and IP SANs, and the same group (a member's) or
access level (a client's). It prints the 'mirrorkv ca sign' command to run on the CA host;
ca sign refuses to grant another group or access than the CSR names. Then move the new key
and the new certificate over the files in use: a running member reloads them without a
restart (docs/operations.md, "Renewing a certificate").

On the CA host itself, 'mirrorkv ca issue --renew' with the certificate's --name, --ip,
--dns and --group (or --client --access) makes the key and the certificate in one step.`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error { return runCertRenew(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Cert, "cert", "", "the certificate to renew (PEM or DER)")
	f.StringVar(&o.KeyOut, "key-out", "", "file for the new private key (must not exist)")
	f.StringVar(&o.CSROut, "csr-out", "", "file for the certificate request (must not exist)")
	f.StringVar(&o.KeyType, "key-type", "", "ecdsa-p256, ed25519, rsa-3072 or rsa-4096 (default: that of the certificate's key)")
	// MIRRORKV_CERT names the connection's certificate, not the one to renew.
	keepOffEnv(f, "cert")
	return cmd
}

func runCertRenew(e *env, o certRenewOptions) error {
	const name = "cert renew"
	if o.Cert == "" || o.KeyOut == "" || o.CSROut == "" {
		return usagef("%s: --cert, --key-out and --csr-out are required", name)
	}
	if o.KeyOut == o.CSROut || o.KeyOut == o.Cert || o.CSROut == o.Cert {
		return usagef("%s: --cert, --key-out and --csr-out must be three different files", name)
	}
	var kt pki.KeyType // empty: the type of the certificate's key
	if o.KeyType != "" {
		var err error
		if kt, err = pki.ParseKeyType(o.KeyType); err != nil {
			return usagef("%s: %w", name, err)
		}
	}
	if err := refuseExistingFiles("remove it or choose another path; renew never replaces a key", o.KeyOut, o.CSROut); err != nil {
		return err
	}
	certs, err := readCertFile("certificate", o.Cert)
	if err != nil {
		return err
	}
	old := certs[0]
	grant, granted, err := pki.GrantOf(old)
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, o.Cert, err)
	}
	req, err := pki.NewRenewal(old, kt)
	if err != nil {
		return err
	}
	if err := pki.WriteRequestFiles(o.CSROut, o.KeyOut, req); err != nil {
		return err
	}
	csr, err := pki.ParseCSR(req.CSRPEM)
	if err != nil {
		return err
	}
	describeRenewal(e, o, old, pki.InspectRequest(csr), grant, granted)
	return nil
}

// describeRenewal says what the CSR asks for and the steps that follow, with the commands
// filled in.
func describeRenewal(e *env, o certRenewOptions, old *x509.Certificate, in pki.RequestInfo, grant pki.Grant, granted bool) {
	w := e.stdout
	fmt.Fprintf(w, "renewing %s (serial %s, valid until %s, %s)\n", pki.DNOf(old), old.SerialNumber.Text(16), caDay(old.NotAfter), daysLeft(old.NotAfter, time.Now()))
	fmt.Fprintf(w, "wrote %s (new private key, 0600: it stays on this host) and %s\n", o.KeyOut, o.CSROut)
	for _, r := range [][2]string{{"subject", in.Subject}, {"DNS", strings.Join(in.DNS, ", ")},
		{"IP", strings.Join(in.IPs, ", ")}, {"key", in.Key}, {"asks for", in.Asks},
		{"not carried", strings.Join(in.Ignored, ", ")}} {
		if r[1] != "" {
			fmt.Fprintf(w, "  %-12s %s\n", r[0]+":", r[1])
		}
	}
	flags, lint := "--group GROUP", ""
	if granted {
		flags = grant.Flags()
		if grant.Kind == pki.KindClient {
			lint = " --kind client"
		} else {
			lint = " --group " + grant.Group
		}
	}
	// The new certificate goes beside the new key, never over the one in use.
	base := strings.TrimSuffix(o.KeyOut, filepath.Ext(o.KeyOut))
	newCert := base + ".crt"
	if filepath.Clean(newCert) == filepath.Clean(o.Cert) {
		newCert = base + ".new.crt"
	}
	fmt.Fprintln(w, "next:")
	fmt.Fprintf(w, "  1. on the CA host: mirrorkv ca sign --dir CADIR --csr %s --out %s --renew %s\n", filepath.Base(o.CSROut), filepath.Base(newCert), flags)
	fmt.Fprintf(w, "  2. here: mirrorkv cert lint %s --key %s --ca CA.crt%s\n", newCert, o.KeyOut, lint)
	fmt.Fprintf(w, "  3. move %s over the key file in use, then %s over %s: a running member reloads the pair within seconds, no restart\n",
		o.KeyOut, newCert, o.Cert)
}

// daysLeft says how long a certificate has, for people.
func daysLeft(notAfter, now time.Time) string {
	d := notAfter.Sub(now)
	if d < 0 {
		return "expired " + roughly(-d) + " ago"
	}
	return roughly(d) + " left"
}
