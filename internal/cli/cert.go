package cli

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newCertCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "certificate files: request, renew, inspect, lint",
	}
	cmd.AddCommand(newCertRequestCmd(e), newCertRenewCmd(e), newCertInspectCmd(e), newCertLintCmd(e))
	return cmd
}

type certRequestOptions struct {
	Name, Out, KeyType string
	IPs, DNS           []string
}

func newCertRequestCmd(e *env) *cobra.Command {
	var o certRequestOptions
	cmd := &cobra.Command{
		Use:   "request --name NAME --out DIR",
		Short: "make a key and a CSR on this host (OUT/NAME.key, OUT/NAME.csr) for 'mirrorkv ca sign'",
		Args:  args(cobra.NoArgs),
		RunE:  func(*cobra.Command, []string) error { return runCertRequest(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "member or client name: the subject CN and the file names")
	f.StringSliceVar(&o.IPs, "ip", nil, "IP address SAN (repeatable)")
	f.StringSliceVar(&o.DNS, "dns", nil, "DNS name SAN (repeatable)")
	f.StringVar(&o.KeyType, "key-type", string(pki.KeyECDSAP256), "ecdsa-p256, ed25519, rsa-3072 or rsa-4096")
	f.StringVar(&o.Out, "out", ".", "directory for NAME.key and NAME.csr")
	return cmd
}

func runCertRequest(e *env, o certRequestOptions) error {
	const name = "cert request"
	if o.Name == "" {
		return usagef("%s: --name is required", name)
	}
	if err := pki.CheckName(o.Name); err != nil {
		return usagef("%s: %w", name, err)
	}
	kt, err := pki.ParseKeyType(o.KeyType)
	if err != nil {
		return usagef("%s: %w", name, err)
	}
	ips, err := parseIPFlags(name, o.IPs)
	if err != nil {
		return err
	}
	csrPath, keyPath := filepath.Join(o.Out, o.Name+".csr"), filepath.Join(o.Out, o.Name+".key")
	if err := refuseExistingFiles("remove it or choose another --out", csrPath, keyPath); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return fmt.Errorf("create output directory (check --out): %w", err)
	}
	req, err := pki.NewRequest(pki.RequestOptions{Name: o.Name, DNS: o.DNS, IPs: ips, KeyType: kt})
	if err != nil {
		return err
	}
	if csrPath, keyPath, err = pki.WriteRequest(o.Out, req); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (private key, stays here) and %s\n", keyPath, csrPath)
	fmt.Fprintf(e.stdout, "next: copy %s to the CA host and run: mirrorkv ca sign --dir CADIR --csr %s.csr --out %s.crt\n",
		csrPath, o.Name, o.Name)
	return nil
}

func newCertInspectCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "show a certificate file: subject DN, issuer, serial, validity, SANs, usages, fingerprint",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			certs, err := readCertFile("certificate", a[0])
			if err != nil {
				return err
			}
			infos := make([]pki.Info, len(certs))
			for i, c := range certs {
				infos[i] = pki.Inspect(c, time.Now())
			}
			if asJSON {
				return certJSON(e.stdout, infos)
			}
			for i, in := range infos {
				printCertInfo(e.stdout, in, i, len(infos))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per certificate")
	return cmd
}

// readCerts reads a certificate file; what names it in the error.
func readCertFile(what, path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s file (check the path): %w", what, err)
	}
	certs, err := pki.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("read %s file %s: %w", what, path, err)
	}
	return certs, nil
}

func certJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printCertInfo(w io.Writer, in pki.Info, i, n int) {
	if n > 1 {
		fmt.Fprintf(w, "certificate %d of %d\n", i+1, n)
	}
	left := fmt.Sprintf("%d days left", in.DaysLeft)
	if in.DaysLeft < 0 {
		left = fmt.Sprintf("EXPIRED %d days ago", -in.DaysLeft)
	}
	rows := [][2]string{
		{"subject", in.Subject}, {"issuer", in.Issuer}, {"serial", in.Serial},
		{"not before", in.NotBefore.Format(time.RFC3339)},
		{"not after", in.NotAfter.Format(time.RFC3339) + " (" + left + ")"},
		{"CA", fmt.Sprint(in.IsCA)}, {"key", in.Key}, {"signature", in.Signature},
		{"DNS", strings.Join(in.DNS, ", ")}, {"IP", strings.Join(in.IPs, ", ")},
		{"URI", strings.Join(in.URIs, ", ")}, {"group", in.Group}, {"access", in.Access},
		{"email", strings.Join(in.Emails, ", ")},
		{"key usage", strings.Join(in.KeyUsage, ", ")}, {"ext key usage", strings.Join(in.ExtKeyUsage, ", ")},
		{"sha256", in.Fingerprint},
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(w, "  %-14s %s\n", r[0]+":", r[1])
		}
	}
}

type certLintOptions struct {
	CA, Key, CRL, Kind, Group, PassphraseFile string
	Profile                                   string
	JSON                                      bool
}

func newCertLintCmd(e *env) *cobra.Command {
	var o certLintOptions
	cmd := &cobra.Command{
		Use:   "lint FILE --ca BUNDLE",
		Short: "check a certificate before deploying it; exit 1 on any error",
		Long: `Check a certificate file against the CA bundle, and optionally its key and the CRL, for
use as a member (serverAuth and clientAuth) or a client. Every finding says what to fix.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error { return runCertLint(e, o, a[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.CA, "ca", "", "CA bundle the peers trust")
	f.StringVar(&o.Key, "key", "", "private key file to check against the certificate")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the key's passphrase, if it is encrypted")
	f.StringVar(&o.CRL, "crl", "", "CRL to check the certificate against")
	f.StringVar(&o.Kind, "kind", "member", "certificate kind: member or client (--role is the older spelling)")
	f.StringVar(&o.Group, "group", "", "group a member certificate must name (serve's --group); any one group when empty")
	f.BoolVar(&o.JSON, "json", false, "print the findings as JSON")
	f.StringVar(&o.Profile, "profile", "", "check against another product's rules instead of mirrorkv's: "+profileNames())
	f.SetNormalizeFunc(olderSpelling("role", "kind"))
	// MIRRORKV_KEY and MIRRORKV_CRL name the connection's key and CRL, not the files to lint.
	keepOffEnv(f, "key", "crl")
	return cmd
}

// olderSpelling reads flag old as flag current, so that scripts written before a flag was
// renamed keep working while help shows the current name only.
func olderSpelling(old, current string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == old {
			name = current
		}
		return pflag.NormalizedName(name)
	}
}

func runCertLint(e *env, o certLintOptions, file string) error {
	if o.CA == "" {
		return usagef("cert lint: --ca is required")
	}
	kind, err := pki.ParseKind(o.Kind)
	if err != nil {
		return usagef("cert lint: %w", err)
	}
	if o.Group != "" {
		if kind != pki.KindMember {
			return usagef("cert lint: --group checks member certificates; drop it with --kind client")
		}
		if err := pki.CheckName(o.Group); err != nil {
			return usagef("cert lint: --group: %w", err)
		}
	}
	in := pki.LintInput{Kind: kind, Group: o.Group, KeyFile: o.Key, CertFile: file}
	use := kind.String()
	if in.Profile, err = lintProfileFlag(o); err != nil {
		return err
	} else if in.Profile != nil {
		use = in.Profile.Name
	}
	for _, r := range []struct {
		what, path string
		dst        *[]byte
	}{{"certificate", file, &in.Cert}, {"CA bundle", o.CA, &in.CA}, {"key", o.Key, &in.Key}, {"CRL", o.CRL, &in.CRL}} {
		if r.path == "" {
			continue
		}
		if *r.dst, err = os.ReadFile(r.path); err != nil {
			return fmt.Errorf("read %s file (check the path): %w", r.what, err)
		}
	}
	if in.KeyPassphrase, err = readPassphraseFile(o.PassphraseFile); err != nil {
		return err
	}
	findings := pki.Lint(in)
	if err := printLintFindings(e.stdout, file, use, findings, o.JSON); err != nil {
		return err
	}
	if n := countLintErrors(findings); n > 0 {
		return fmt.Errorf("%s: %d error(s); fix them before deploying it", file, n)
	}
	return nil
}

func countLintErrors(fs []pki.Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == pki.SeverityError {
			n++
		}
	}
	return n
}

// printLintFindings prints the findings of file, checked for use (a kind or a profile).
func printLintFindings(w io.Writer, file string, use string, fs []pki.Finding, asJSON bool) error {
	if asJSON {
		type finding struct {
			pki.Finding
			Reason int `json:"reason,omitempty"` // documented reason code (docs/reasons.md)
		}
		out := make([]finding, len(fs))
		for i, f := range fs {
			out[i] = finding{f, int(f.Reason())}
		}
		return certJSON(w, struct {
			File     string    `json:"file"`
			Kind     string    `json:"kind"`
			OK       bool      `json:"ok"`
			Findings []finding `json:"findings"`
		}{file, use, !pki.HasErrors(fs), out})
	}
	for _, f := range fs {
		fmt.Fprintf(w, "%-7s %s: %s\n", f.Severity, f.Rule, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(w, "        fix: %s\n", f.Fix)
		}
	}
	if !pki.HasErrors(fs) {
		fmt.Fprintf(w, "%s: ok for %s use\n", file, use)
	}
	return nil
}
