package cli

import (
	"bufio"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newCACmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "run the private CA: init, issue, sign, revoke, crl",
		Long: `mirrorkv runs its own private, dedicated certificate authority. Keep the CA directory
(ca.key and index.json) on a safe host; copy ca.crt and crl.pem to every member.
See docs/certificates.md for the whole lifecycle.`,
	}
	cmd.AddCommand(newCAInitCmd(e), newCAIssueCmd(e), newCASignCmd(e), newCARevokeCmd(e), newCACRLCmd(e), newCAProfilesCmd(e), newCARotateCmd(e))
	return cmd
}

type caInitOptions struct {
	Dir, Name, KeyType, PassphraseFile string
	Days                               int
	InsecureNoPassphrase               bool
}

func newCAInitCmd(e *env) *cobra.Command {
	var o caInitOptions
	cmd := &cobra.Command{
		Use:   "init --dir DIR --passphrase-file FILE",
		Short: "create a new CA: DIR/ca.crt, ca.key (encrypted), crl.pem, index.json",
		Long: `Create a new CA. ca.key is encrypted with the passphrase on the first line of
--passphrase-file (scrypt and AES-256); every later 'ca' command needs the same file.
A CA key in the clear is written only with --insecure-no-passphrase.`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error { return runCAInit(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "CA directory (created if missing; must not hold a CA)")
	f.StringVar(&o.Name, "name", pki.DefaultCAName, "CA subject common name")
	f.StringVar(&o.KeyType, "key-type", string(pki.KeyECDSAP256), "ecdsa-p256, ed25519, rsa-3072 or rsa-4096")
	f.IntVar(&o.Days, "days", pki.DefaultCADays, "CA lifetime in days")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "encrypt ca.key with the passphrase on the first line of this file (required unless --insecure-no-passphrase)")
	f.BoolVar(&o.InsecureNoPassphrase, "insecure-no-passphrase", false, "write ca.key unencrypted: anyone who reads it can issue certificates")
	keepOffEnv(f, "insecure-no-passphrase")
	return cmd
}

func runCAInit(e *env, o caInitOptions) error {
	if o.Dir == "" {
		return usagef("ca init: --dir is required")
	}
	kt, err := pki.ParseKeyType(o.KeyType)
	if err != nil {
		return usagef("ca init: %w", err)
	}
	if o.Days <= 0 {
		return usagef("ca init: --days must be positive")
	}
	if o.InsecureNoPassphrase && o.PassphraseFile != "" {
		return usagef("ca init: --passphrase-file and --insecure-no-passphrase exclude each other; keep --passphrase-file")
	}
	pass, err := readPassphraseFile(o.PassphraseFile)
	if err != nil {
		return err
	}
	ca, err := pki.InitCA(o.Dir, pki.CAOptions{Name: o.Name, KeyType: kt, Days: o.Days, Passphrase: pass,
		Unencrypted: o.InsecureNoPassphrase})
	if err != nil {
		return err
	}
	enc := "UNENCRYPTED (--insecure-no-passphrase): keep this directory private"
	if pass != nil {
		enc = "encrypted with the passphrase"
	}
	c := ca.Certificate()
	fmt.Fprintf(e.stdout, "created CA %s in %s, valid until %s\n", pki.DNOf(c), o.Dir, caDay(c.NotAfter))
	fmt.Fprintf(e.stdout, "  %s  copy to every member (trust bundle)\n", filepath.Join(o.Dir, pki.CACertFile))
	fmt.Fprintf(e.stdout, "  %s  %s\n", filepath.Join(o.Dir, pki.CAKeyFile), enc)
	fmt.Fprintf(e.stdout, "  %s  copy to every member (revocation list)\n", filepath.Join(o.Dir, pki.CRLFile))
	next := fmt.Sprintf("mirrorkv ca issue --dir %s --name NAME --ip ADDRESS", o.Dir)
	if pass != nil {
		next += " --passphrase-file " + o.PassphraseFile
	}
	fmt.Fprintf(e.stdout, "next: %s\n", next)
	return nil
}

// readPassphrase returns the first line of path, or nil when path is empty.
func readPassphraseFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read passphrase file (check --passphrase-file): %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return nil, fmt.Errorf("passphrase file %s: its first line is empty; write the passphrase there", path)
	}
	return []byte(line), nil
}

// openCA opens the CA directory with the passphrase from passFile.
func openCADir(dir, passFile string) (*pki.CA, error) {
	pass, err := readPassphraseFile(passFile)
	if err != nil {
		return nil, err
	}
	ca, err := pki.OpenCA(dir, pass)
	if err != nil {
		return nil, err
	}
	if pass != nil && !ca.KeyEncrypted() {
		// Whoever passes a passphrase believes the key is protected by it; going on would
		// leave that belief standing.
		return nil, fmt.Errorf("CA %s: --passphrase-file was given, but %s is stored in the clear: anyone who reads it can issue certificates; drop --passphrase-file, or encrypt the key (openssl pkcs8 -topk8 -v2 aes256 -in %[2]s -out %[2]s.new, then move it over %[2]s)", dir, filepath.Join(dir, pki.CAKeyFile))
	}
	return ca, nil
}

func caDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// grantFlags are the flags that decide what a certificate is for.
type grantFlags struct {
	Client bool
	Access string
	Role   string // the older spelling of --access, kept for existing scripts
	Group  string
	Days   int
	Renew  bool

	flags *pflag.FlagSet // to tell a --group given from its default
}

func (g *grantFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&g.Client, "client", false, "client certificate (clientAuth only, access URI) instead of a member certificate")
	f.StringVar(&g.Access, "access", "", "client access: admin, readwrite (default) or readonly; needs --client")
	f.StringVar(&g.Role, "role", "", "same as --access (older spelling)")
	f.StringVar(&g.Group, "group", pki.DefaultGroup, "member certificate's group, its URI SAN urn:mirrorkv:group:GROUP; must match the members' 'serve --group'")
	g.flags = f
	f.IntVar(&g.Days, "days", pki.DefaultLeafDays, "lifetime in days (never beyond the CA's)")
	f.BoolVar(&g.Renew, "renew", false, "allow a new certificate while one for the same subject is still valid")
}

func (g *grantFlags) options(cmd string) (pki.SignOptions, error) {
	access, flag := g.Access, "--access"
	switch {
	case g.Role != "" && g.Access != "" && !strings.EqualFold(g.Role, g.Access):
		return pki.SignOptions{}, usagef("%s: --access %s and --role %s disagree; give --access only", cmd, g.Access, g.Role)
	case access == "":
		access, flag = g.Role, "--role"
	}
	if access != "" && !g.Client {
		return pki.SignOptions{}, usagef("%s: %s needs --client", cmd, flag)
	}
	if g.Days <= 0 {
		return pki.SignOptions{}, usagef("%s: --days must be positive", cmd)
	}
	opts := pki.SignOptions{Days: g.Days, Renew: g.Renew}
	if !g.Client {
		if err := pki.CheckName(g.Group); err != nil {
			return opts, usagef("%s: --group: %w", cmd, err)
		}
		opts.Group = g.Group
	} else if g.flags != nil && g.flags.Changed("group") {
		return opts, usagef("%s: --group is for member certificates; a client certificate carries no group", cmd)
	} else {
		a, err := pki.ParseAccess(access)
		if err != nil {
			return opts, usagef("%s: %w", cmd, err)
		}
		opts.Kind, opts.Access = pki.KindClient, a
	}
	return opts, nil
}

// parseIPs reads --ip values.
func parseIPFlags(cmd string, vals []string) ([]net.IP, error) {
	ips := make([]net.IP, 0, len(vals))
	for _, v := range vals {
		ip := net.ParseIP(v)
		if ip == nil {
			return nil, usagef("%s: --ip %q is not an IP address", cmd, v)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// refuseExisting fails when any path exists, so that nothing is replaced by accident.
func refuseExistingFiles(hint string, paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; %s", p, hint)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

func describeIssued(e *env, verb string, is *pki.Issued) {
	c := is.Cert
	kind, grant := "member", ""
	if a, err := pki.AccessOf(c); err == nil {
		kind, grant = "client", "access "+string(a)
	} else if g, err := pki.GroupOf(c); err == nil {
		grant = "group " + g
	}
	fmt.Fprintf(e.stdout, "%s %s certificate %s (%s), serial %s, valid until %s\n",
		verb, kind, pki.DNOf(c), grant, c.SerialNumber.Text(16), caDay(c.NotAfter))
}

type caIssueOptions struct {
	Dir, Name, Out, KeyType, PassphraseFile string
	IPs, DNS                                []string
	grantFlags
	profileFlags
}

func newCAIssueCmd(e *env) *cobra.Command {
	var o caIssueOptions
	cmd := &cobra.Command{
		Use:   "issue --dir DIR --name NAME",
		Short: "issue a member (or --client) certificate and its key: OUT/NAME.crt, OUT/NAME.key",
		Args:  args(cobra.NoArgs),
		RunE:  func(*cobra.Command, []string) error { return runCAIssue(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "CA directory")
	f.StringVar(&o.Name, "name", "", "member or client name: the subject CN and the file names")
	f.StringSliceVar(&o.IPs, "ip", nil, "IP address SAN (repeatable)")
	f.StringSliceVar(&o.DNS, "dns", nil, "DNS name SAN (repeatable)")
	f.StringVar(&o.Out, "out", ".", "directory for NAME.crt and NAME.key")
	f.StringVar(&o.KeyType, "key-type", string(pki.KeyECDSAP256), "ecdsa-p256, ed25519, rsa-3072 or rsa-4096")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the CA key's passphrase")
	o.grantFlags.bind(cmd)
	o.profileFlags.bind(f)
	return cmd
}

// request checks the flags and turns them into an issue request.
func (o caIssueOptions) request() (pki.IssueRequest, error) {
	const name = "ca issue"
	if o.Dir == "" || o.Name == "" {
		return pki.IssueRequest{}, usagef("%s: --dir and --name are required", name)
	}
	if err := pki.CheckName(o.Name); err != nil {
		return pki.IssueRequest{}, usagef("%s: %w", name, err)
	}
	opts, err := o.grantFlags.options(name)
	if err != nil {
		return pki.IssueRequest{}, err
	}
	kt, err := pki.ParseKeyType(o.KeyType)
	if err != nil {
		return pki.IssueRequest{}, usagef("%s: %w", name, err)
	}
	ips, err := parseIPFlags(name, o.IPs)
	return pki.IssueRequest{Name: o.Name, DNS: o.DNS, IPs: ips, Days: opts.Days, Kind: opts.Kind,
		Access: opts.Access, Group: opts.Group, KeyType: kt, Renew: o.Renew}, err
}

func runCAIssue(e *env, o caIssueOptions) error {
	if prof, err := o.profileFlags.resolve("ca issue", &o.grantFlags); err != nil || prof != nil {
		if err != nil {
			return err
		}
		return runCAIssueProfile(e, o, prof)
	}
	req, err := o.request()
	if err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(o.Out, o.Name+".crt"), filepath.Join(o.Out, o.Name+".key")
	if !o.Renew {
		if err := refuseExistingFiles("add --renew to replace it, or choose another --out", certPath, keyPath); err != nil {
			return err
		}
	}
	ca, err := openCADir(o.Dir, o.PassphraseFile)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(o.Out)
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return fmt.Errorf("create output directory (check --out): %w", err)
	}
	is, err := ca.Issue(req)
	if err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(o.Out) // made just now, and still empty: leave nothing behind
		}
		return err
	}
	if certPath, keyPath, err = pki.WriteIssued(o.Out, is); err != nil {
		return err
	}
	describeIssued(e, "issued", is)
	fmt.Fprintf(e.stdout, "  %s\n  %s  (private key, 0600)\n", certPath, keyPath)
	return nil
}

type caSignOptions struct {
	Dir, CSR, Out, PassphraseFile string
	Yes                           bool
	grantFlags
	profileFlags
}

func newCASignCmd(e *env) *cobra.Command {
	var o caSignOptions
	cmd := &cobra.Command{
		Use:   "sign --dir DIR --csr FILE",
		Short: "sign a request made by 'mirrorkv cert request'; the CA decides the extensions",
		Long: `Sign a certificate request. Before signing, ca sign shows on standard error the
request's subject, DNS and IP SANs and key, and what the certificate will grant (a
member's --group, a client's --access), then asks "sign? [y/N]" on standard input.
--yes signs without asking; without a terminal or an answer it refuses.`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error { return runCASign(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "CA directory")
	f.StringVar(&o.CSR, "csr", "", "certificate request file (PEM or DER)")
	f.StringVar(&o.Out, "out", "", "certificate file to write (default: standard output)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the CA key's passphrase")
	f.BoolVar(&o.Yes, "yes", false, "sign without asking, after checking the request some other way")
	keepOffEnv(f, "yes")
	o.grantFlags.bind(cmd)
	o.profileFlags.bind(f)
	return cmd
}

func runCASign(e *env, o caSignOptions) error {
	if prof, err := o.profileFlags.resolve("ca sign", &o.grantFlags); err != nil || prof != nil {
		if err != nil {
			return err
		}
		return runCASignProfile(e, o, prof)
	}
	if o.Dir == "" || o.CSR == "" {
		return usagef("ca sign: --dir and --csr are required")
	}
	opts, err := o.grantFlags.options("ca sign")
	if err != nil {
		return err
	}
	csr, err := os.ReadFile(o.CSR)
	if err != nil {
		return fmt.Errorf("read request (check --csr): %w", err)
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return fmt.Errorf("sign %s: %w", o.CSR, err)
	}
	ca, err := openCADir(o.Dir, o.PassphraseFile)
	if err != nil {
		return err
	}
	if err := pki.CheckGrant(req, opts); err != nil {
		return fmt.Errorf("sign %s: %w", o.CSR, err) // before asking: the answer would not matter
	}
	if err := confirmSign(e, o, pki.InspectRequest(req), opts); err != nil {
		return err
	}
	is, err := ca.Sign(csr, opts)
	if err != nil {
		return fmt.Errorf("sign %s: %w", o.CSR, err)
	}
	if o.Out == "" {
		_, err := e.stdout.Write(is.CertPEM)
		return err
	}
	if err := pki.WriteCertFile(o.Out, is.CertPEM); err != nil {
		return err
	}
	describeIssued(e, "signed", is)
	fmt.Fprintf(e.stdout, "  %s  (send it back to the host that holds the key)\n", o.Out)
	return nil
}

// confirmSign shows on stderr what signing the request certifies and asks on stdin, unless
// --yes was given. Only "y" or "yes" signs.
func confirmSign(e *env, o caSignOptions, in pki.RequestInfo, opts pki.SignOptions) error {
	w := e.stderr
	fmt.Fprintf(w, "request %s\n", o.CSR)
	for _, r := range [][2]string{{"subject", in.Subject}, {"DNS", strings.Join(in.DNS, ", ")},
		{"IP", strings.Join(in.IPs, ", ")}, {"key", in.Key}, {"asks for", in.Asks}, {"not copied", strings.Join(in.Ignored, ", ")}} {
		if r[1] != "" {
			fmt.Fprintf(w, "  %-11s %s\n", r[0]+":", r[1])
		}
	}
	grant := "a member certificate (serverAuth, clientAuth) for group " + opts.Group
	if opts.Kind == pki.KindClient {
		grant = "a client certificate (clientAuth) with access " + string(opts.Access)
	}
	if p := opts.Profile; p != nil {
		grant = fmt.Sprintf("a %s certificate (%s)", p.Name, p.Uses())
	}
	fmt.Fprintf(w, "will sign %s, valid %d days\n", grant, opts.Days)
	if o.Yes {
		return nil
	}
	fmt.Fprint(w, "sign? [y/N] ")
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	switch {
	case answer == "y" || answer == "yes":
		return nil
	case answer == "" && err != nil:
		fmt.Fprintln(w)
		return errors.New("ca sign: no answer on standard input; re-run with --yes after checking the SANs above")
	}
	return fmt.Errorf("ca sign: not signed (answer %q); nothing was written", answer)
}

type caRevokeOptions struct {
	Dir, Serial, Reason, PassphraseFile string
	CRLDays                             int
	Push                                bool
}

func newCARevokeCmd(e *env) *cobra.Command {
	var o caRevokeOptions
	var conn connectOptions
	cmd := &cobra.Command{
		Use:   "revoke --dir DIR (CERTFILE | --serial HEX) [--push --endpoints URLS ...]",
		Short: "revoke a certificate and rewrite DIR/crl.pem; --push sends it to the group",
		Long: `Revoke a certificate and rewrite DIR/crl.pem. With --push the new CRL also goes to the
group over the admin API (an admin client certificate; the connection flags as for kv and
member): every member checks it against its CA bundles, puts it in force and closes the
revoked certificate's live connections. Without --push, copy crl.pem to every member.`,
		Example: `  mirrorkv ca revoke --dir client-ca alice.crt --push --endpoints https://10.0.0.1:8001 \
    --cacert ca.crt --cert admin.crt --key admin.key`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error { return runCARevoke(e, o, &conn, a) },
	}
	addConnectFlags(cmd, &conn)
	f := cmd.Flags()
	f.BoolVar(&o.Push, "push", false, "send the new CRL to the group (needs --endpoints, --cacert, --cert and --key of an admin)")
	f.StringVar(&o.Dir, "dir", "", "CA directory")
	f.StringVar(&o.Serial, "serial", "", "serial number in hex, as 'mirrorkv cert inspect' prints it")
	f.StringVar(&o.Reason, "reason", "unspecified", "unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn")
	f.IntVar(&o.CRLDays, "crl-days", pki.DefaultCRLDays, "days until the new CRL's next update")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the CA key's passphrase")
	return cmd
}

func runCARevoke(e *env, o caRevokeOptions, conn *connectOptions, a []string) error {
	if o.Dir == "" || (len(a) == 1) == (o.Serial != "") {
		return usagef("ca revoke: give --dir and either a certificate file or --serial")
	}
	reason, err := pki.ParseReason(o.Reason)
	if err != nil {
		return usagef("ca revoke: %w", err)
	}
	serial, err := revokeSerial(o.Serial, a)
	if err != nil {
		return err
	}
	// The connection is checked before anything is revoked, so that a mistyped flag does not
	// leave a revocation that reached no member.
	var c *client.Client
	if o.Push {
		if c, err = conn.client(); err != nil {
			return err
		}
		defer c.Close()
	}
	ca, err := openCADir(o.Dir, o.PassphraseFile)
	if err != nil {
		return err
	}
	if err := ca.Revoke(serial, reason); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked serial %s\n", serial.Text(16))
	crl, err := writeCRLFile(e, ca, o.CRLDays, !o.Push)
	if err != nil || !o.Push {
		return err
	}
	return pushCRL(e, c, crl)
}

func revokeSerial(flag string, a []string) (*big.Int, error) {
	if flag != "" {
		s, err := pki.ParseSerial(flag)
		if err != nil {
			return nil, usagef("ca revoke: %w", err)
		}
		return s, nil
	}
	b, err := os.ReadFile(a[0])
	if err != nil {
		return nil, fmt.Errorf("read certificate to revoke (or give --serial): %w", err)
	}
	certs, err := pki.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("read certificate to revoke %s: %w", a[0], err)
	}
	return certs[0].SerialNumber, nil
}

// writeCRLFile writes a new DIR/crl.pem and returns it (PEM). copyHint says to copy it by
// hand, when it is not pushed.
func writeCRLFile(e *env, ca *pki.CA, days int, copyHint bool) ([]byte, error) {
	if days <= 0 {
		return nil, usagef("--days must be positive")
	}
	b, err := ca.CRL(days)
	if err != nil {
		return nil, err
	}
	crl, err := pki.ParseCRL(b)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stdout, "wrote %s: CRL number %s, %d revoked, next update %s\n",
		filepath.Join(ca.Dir(), pki.CRLFile), crl.Number, len(crl.RevokedCertificateEntries), caDay(crl.NextUpdate))
	if copyHint {
		fmt.Fprintln(e.stdout, "copy it to every member (or run mirrorkv ca crl --push); they reload it without a restart")
	}
	return b, nil
}

// pushCRL sends crl (PEM) to the group. Once it returns, the group has committed the CRL;
// every member then puts it in force and closes the revoked certificates' connections.
func pushCRL(e *env, c *client.Client, crl []byte) error {
	got, err := c.PushCRL(e.ctx, crl)
	if err != nil {
		return fmt.Errorf("%w\nthe CRL is written but not in force on the group: fix the cause and run mirrorkv ca crl --push, or copy crl.pem to every member", serverError(err))
	}
	fmt.Fprintf(e.stdout, "pushed CRL number %s of %s to the group for the %s port: %d revoked; members close the revoked certificates' connections now\n",
		got.Number, got.Issuer, got.Port, got.Revoked)
	return nil
}

type caCRLOptions struct {
	Dir, PassphraseFile string
	Days                int
	Push                bool
}

func newCACRLCmd(e *env) *cobra.Command {
	var o caCRLOptions
	var conn connectOptions
	cmd := &cobra.Command{
		Use:   "crl --dir DIR [--push --endpoints URLS ...]",
		Short: "rewrite DIR/crl.pem (run it before the current CRL's next update); --push sends it to the group",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if o.Dir == "" {
				return usagef("ca crl: --dir is required")
			}
			var c *client.Client
			if o.Push {
				var err error
				if c, err = conn.client(); err != nil {
					return err
				}
				defer c.Close()
			}
			ca, err := openCADir(o.Dir, o.PassphraseFile)
			if err != nil {
				return err
			}
			crl, err := writeCRLFile(e, ca, o.Days, !o.Push)
			if err != nil || !o.Push {
				return err
			}
			return pushCRL(e, c, crl)
		},
	}
	addConnectFlags(cmd, &conn)
	f := cmd.Flags()
	f.BoolVar(&o.Push, "push", false, "send the new CRL to the group (needs --endpoints, --cacert, --cert and --key of an admin)")
	f.StringVar(&o.Dir, "dir", "", "CA directory")
	f.IntVar(&o.Days, "days", pki.DefaultCRLDays, "days until the CRL's next update")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the CA key's passphrase")
	return cmd
}
