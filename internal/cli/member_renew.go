package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/pki"
)

// memberRenewOptions are the flags of `member renew`.
type memberRenewOptions struct {
	CADir          string // --ca-dir: the replication CA
	PassphraseFile string // --passphrase-file
	Days           int    // --days
	All            bool   // --all
}

func newMemberRenewCmd(e *env, conn *connectOptions) *cobra.Command {
	var o memberRenewOptions
	cmd := &cobra.Command{
		Use:   "renew NAME... | --all",
		Short: "renew members' certificates over the admin API: each member makes its own new key",
		Long: `Renew member certificates on a live group from the CA host. Each member named makes a new
key and a request with its current subject and SANs (POST /v1/tls/csr); the key never
leaves it. The replication CA in --ca-dir signs the request for the member's group, and the
member installs the certificate (POST /v1/tls/cert) and serves it at once, without a
restart. The new files live in the member's DIR/tls (docs/rotation.md, "DIR/tls and the
flags"), which is also where a member keeps what a CA rotation pushed.`,
		Example: `  mirrorkv member renew m2 --ca-dir ca/members --passphrase-file ca.pass
  mirrorkv member renew --all --ca-dir ca/members --passphrase-file ca.pass`,
		RunE: func(_ *cobra.Command, names []string) error {
			if o.All == (len(names) > 0) {
				return usagef("member renew: name the members to renew, or give --all")
			}
			if o.CADir == "" {
				return usagef("member renew: --ca-dir is required: the replication CA's directory")
			}
			return runMemberRenew(e, conn, o, names)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CADir, "ca-dir", "", "directory of the replication CA that signs the new certificates")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the CA key's passphrase")
	f.IntVar(&o.Days, "days", pki.DefaultLeafDays, "lifetime of the new certificates in days")
	f.BoolVar(&o.All, "all", false, "renew every member of the group")
	return cmd
}

func runMemberRenew(e *env, conn *connectOptions, o memberRenewOptions, names []string) error {
	ca, err := openCADir(o.CADir, o.PassphraseFile)
	if err != nil {
		return err
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(e.ctx)
	if err != nil {
		return serverError(fmt.Errorf("read the group's members: %w", err))
	}
	urls := map[string]string{}
	for _, m := range st.Members {
		urls[m.Name] = m.ClientURL
		if o.All {
			names = append(names, m.Name)
		}
	}
	for _, name := range names {
		url, ok := urls[name]
		if !ok || url == "" {
			return fmt.Errorf("member renew: %s is not a member of the group, or its client URL is unknown (mirrorkv status)", name)
		}
		is, err := renewMemberCert(e.ctx, c, ca, url, o.Days)
		if err != nil {
			return fmt.Errorf("renew %s: %w", name, err)
		}
		fmt.Fprintf(e.stdout, "%s: serves %s (serial %s) until %s\n", name, pki.DNOf(is.Cert), is.Cert.SerialNumber.Text(16), caDay(is.Cert.NotAfter))
	}
	return nil
}

// renewMemberCert has the member at url make a new key and request, signs the request with
// ca for the group the member's current certificate names, and installs the certificate on
// the member. The member keeps its subject and SANs, so its authorisation holds.
func renewMemberCert(ctx context.Context, c *client.Client, ca *pki.CA, url string, days int) (*pki.Issued, error) {
	info, err := c.TLSOf(ctx, url)
	if err != nil {
		return nil, serverError(fmt.Errorf("read the certificate it serves: %w", err))
	}
	chain, err := pki.ParseCertificates([]byte(info.ChainPEM))
	if err != nil {
		return nil, fmt.Errorf("read the certificate it serves: %w", err)
	}
	group, err := pki.GroupOf(chain[0])
	if err != nil {
		return nil, fmt.Errorf("read the group of its certificate: %w", err)
	}
	csr, err := c.KeyRequestOf(ctx, url)
	if err != nil {
		return nil, serverError(fmt.Errorf("ask for a key request: %w", err))
	}
	is, err := ca.Sign(csr, pki.SignOptions{Kind: pki.KindMember, Group: group, Days: days, Renew: true})
	if err != nil {
		return nil, fmt.Errorf("sign its request: %w", err)
	}
	if _, err := c.PushCert(ctx, url, is.CertPEM); err != nil {
		return nil, serverError(fmt.Errorf("install the new certificate: %w", err))
	}
	return is, nil
}
