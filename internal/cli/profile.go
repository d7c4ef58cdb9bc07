package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// profileFlags are the flags of 'ca issue' and 'ca sign' that make a certificate for another
// product (pki.Profiles) instead of a mirrorkv member or client.
type profileFlags struct {
	Profile string
	Primary string // MariaDB: the primary a replica copies from
	User    string // MariaDB: the replication user
}

func (p *profileFlags) bind(f *pflag.FlagSet) {
	f.StringVar(&p.Profile, "profile", "", "issue for another product, in its file layout, and print its configuration: "+profileNames())
	f.StringVar(&p.Primary, "primary", "", "with --profile mariadb: HOST:PORT of the primary this replica copies from (writes client-cert.pem, prints CREATE USER and CHANGE MASTER TO)")
	f.StringVar(&p.User, "repl-user", pki.DefaultReplicationUser, "with --profile mariadb --primary: the replication user")
}

func profileNames() string {
	var names []string
	for _, p := range pki.Profiles() {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

// resolve returns the profile asked for, refusing the flags that make no sense with it.
func (p *profileFlags) resolve(cmd string, g *grantFlags) (*pki.Profile, error) {
	if p.Profile == "" {
		if p.Primary != "" {
			return nil, usagef("%s: --primary needs --profile mariadb", cmd)
		}
		return nil, nil
	}
	prof, err := pki.ProfileByName(p.Profile)
	if err != nil {
		return nil, usagef("%s: %w", cmd, err)
	}
	for _, name := range []string{"client", "access", "role", "group"} {
		if g.flags.Changed(name) {
			return nil, usagef("%s: --%s is for mirrorkv certificates; --profile %s decides the extensions", cmd, name, prof.Name)
		}
	}
	if p.Primary != "" && prof.Replica != "primary" {
		return nil, usagef("%s: --primary is for --profile mariadb", cmd)
	}
	return prof, nil
}

func newCAProfilesCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "profiles",
		Short: "list the products 'ca issue --profile' makes certificates for",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			for _, p := range pki.Profiles() {
				fmt.Fprintf(e.stdout, "%-10s %s: %s\n", p.Name, p.Product, p.Summary)
			}
			return nil
		},
	}
}

// runCAIssueProfile is 'ca issue --profile': a certificate and key for another product,
// written in its layout, then the configuration to paste.
func runCAIssueProfile(e *env, o caIssueOptions, prof *pki.Profile) error {
	const name = "ca issue"
	if o.Dir == "" || o.Name == "" {
		return usagef("%s: --dir and --name are required", name)
	}
	if err := pki.CheckName(o.Name); err != nil {
		return usagef("%s: %w", name, err)
	}
	if o.Days <= 0 {
		return usagef("%s: --days must be positive", name)
	}
	kt := prof.KeyType
	if o.flags.Changed("key-type") {
		var err error
		if kt, err = pki.ParseKeyType(o.KeyType); err != nil {
			return usagef("%s: %w", name, err)
		}
	}
	ips, err := parseIPFlags(name, o.IPs)
	if err != nil {
		return err
	}
	replica := o.Primary != ""
	if !o.Renew {
		var paths []string
		for _, f := range prof.Layout(o.Name, replica) {
			paths = append(paths, filepath.Join(o.Out, f.Name))
		}
		if err := refuseExistingFiles("add --renew to replace it, or choose another --out", paths...); err != nil {
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
	is, err := ca.Issue(pki.IssueRequest{Name: o.Name, DNS: o.DNS, IPs: ips, Days: o.Days, KeyType: kt,
		Renew: o.Renew, Profile: prof})
	if err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(o.Out) // made just now, and still empty: leave nothing behind
		}
		return err
	}
	written, err := pki.WriteProfile(o.Out, prof, is, ca.Certificate(), replica)
	if err != nil {
		return err
	}
	return describeProfile(e, "issued", prof, is, ca, written, o.Out, o.profileFlags)
}

// describeProfile prints what was written and the product's configuration.
func describeProfile(e *env, verb string, prof *pki.Profile, is *pki.Issued, ca *pki.CA, written []pki.WrittenFile, out string, pf profileFlags) error {
	c := is.Cert
	fmt.Fprintf(e.stdout, "%s %s certificate %s (%s), serial %s, valid until %s\n",
		verb, prof.Name, pki.DNOf(c), prof.Uses(), c.SerialNumber.Text(16), caDay(c.NotAfter))
	for _, f := range written {
		what := f.Note
		if f.Content == pki.FileKey {
			what = "private key, 0600; " + what
		}
		fmt.Fprintf(e.stdout, "  %-28s %s\n", f.Path, what)
	}
	if prof.Note != "" {
		fmt.Fprintf(e.stdout, "note: %s\n", prof.Note)
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("resolve --out %s: %w", out, err)
	}
	setup, err := prof.Setup(pki.SetupInput{Dir: dir, Layout: prof.Layout(is.Name, pf.Primary != ""),
		Cert: c, CA: ca.Certificate(), Primary: pf.Primary, User: pf.User})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s", setup)
	return nil
}

// runCASignProfile is 'ca sign --profile': the certificate for a request, with the CA
// certificate, in the product's layout in the directory --out; the key stays where the
// request was made.
func runCASignProfile(e *env, o caSignOptions, prof *pki.Profile) error {
	if o.Dir == "" || o.CSR == "" || o.Out == "" {
		return usagef("ca sign: --dir, --csr and --out (a directory, with --profile) are required")
	}
	if o.Days <= 0 {
		return usagef("ca sign: --days must be positive")
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
	opts := pki.SignOptions{Days: o.Days, Renew: o.Renew, Profile: prof}
	if err := confirmSign(e, o, pki.InspectRequest(req), opts); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return fmt.Errorf("create output directory (check --out): %w", err)
	}
	is, err := ca.Sign(csr, opts)
	if err != nil {
		return fmt.Errorf("sign %s: %w", o.CSR, err)
	}
	written, err := pki.WriteProfile(o.Out, prof, is, ca.Certificate(), o.Primary != "")
	if err != nil {
		return err
	}
	if err := describeProfile(e, "signed", prof, is, ca, written, o.Out, o.profileFlags); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nput the request's key beside them as the key files named above\n")
	return nil
}

// lintProfileFlag resolves 'cert lint --profile', which replaces --kind and --group.
func lintProfileFlag(o certLintOptions) (*pki.Profile, error) {
	if o.Profile == "" {
		return nil, nil
	}
	if o.Group != "" {
		return nil, usagef("cert lint: --group is for mirrorkv member certificates; drop it with --profile")
	}
	p, err := pki.ProfileByName(o.Profile)
	if err != nil {
		return nil, usagef("cert lint: %w", err)
	}
	return p, nil
}
