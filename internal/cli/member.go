package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/wire"
)

func newMemberCmd(e *env) *cobra.Command {
	var conn connectOptions
	cmd := &cobra.Command{
		Use:   "member",
		Short: "add, remove, list, promote and renew members; transfer or prefer the primary role",
		Long: `Change the group's membership. Every command but list needs a client certificate
with the admin access level (mirrorkv ca issue --client --access admin).

A member is authorised by the subject DN of its certificate: add it on the group before
starting it, then start it with --join and --join-pin as member add prints them.`,
	}
	addConnectFlags(cmd, &conn)
	cmd.AddCommand(newMemberAddCmd(e, &conn), newMemberListCmd(e, &conn),
		newMemberOpCmd(e, &conn, "remove", "remove a member and withdraw its DN's authorisation", "removed"),
		newMemberOpCmd(e, &conn, "promote", "make an async member a failover member (a voter)", "promoted"),
		newMemberOpCmd(e, &conn, "transfer", "make NAME the primary (leadership transfer)", "is now the primary"),
		newMemberPreferCmd(e, &conn), newMemberRecoverCmd(e, &conn), newMemberRenewCmd(e, &conn))
	return cmd
}

func newMemberPreferCmd(e *env, conn *connectOptions) *cobra.Command {
	var none bool
	cmd := &cobra.Command{
		Use:   "prefer NAME | --none",
		Short: "make NAME the preferred primary, or withdraw the preference",
		Long: `Make a failover member the preferred primary. The preference is replicated: whichever
member is primary hands the role to the preferred member once it has been in sync for the
hold-down (serve --prefer-hold-down), and takes it back only by election when the preferred
member fails. While the preferred member is down or behind, any failover member may lead.
mirrorkv status shows the preference and the reason it is or is not in force.`,
		Example: `  mirrorkv member prefer m1
  mirrorkv member prefer --none`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			if none == (len(a) == 1) {
				return usagef("member prefer needs NAME or --none")
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			name := ""
			if len(a) == 1 {
				name = a[0]
			}
			if err := c.Prefer(e.ctx, name); err != nil {
				return serverError(err)
			}
			if name == "" {
				fmt.Fprintln(e.stdout, "no member is preferred now: any failover member may lead")
				return nil
			}
			fmt.Fprintf(e.stdout, "member %s is the preferred primary; mirrorkv status shows when it takes the role\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&none, "none", false, "withdraw the preference")
	return cmd
}

type memberAddOptions struct {
	Addr      string // --addr
	DN        string // --dn
	CertFile  string // --cert: take the DN from the member's certificate instead
	ClientURL string // --client-url
	Async     bool   // --async
}

func newMemberAddCmd(e *env, conn *connectOptions) *cobra.Command {
	var o memberAddOptions
	cmd := &cobra.Command{
		Use:   "add NAME --addr HOST:PORT --dn DN",
		Short: "authorise a member's DN and add it to the group",
		Long: `Authorise a member's certificate DN and add it to the group. A failover member joins as a
non-voter and becomes a voter once it has caught up; --async keeps it a non-voter.`,
		Example: `  mirrorkv member add m4 --addr 10.0.0.4:7001 --dn "CN=m4,O=example" --client-url https://10.0.0.4:8001
  mirrorkv member add m5 --addr 10.0.0.5:7001 --cert m5.crt --async`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			if o.CertFile != "" {
				if o.DN != "" {
					return usagef("give --dn or --cert, not both")
				}
				dn, err := dnOfCertFile(o.CertFile)
				if err != nil {
					return err
				}
				o.DN = dn
			}
			if o.Addr == "" || o.DN == "" {
				return usagef("member add needs --addr HOST:PORT (its member port) and --dn DN or --cert FILE (its certificate subject; mirrorkv cert inspect prints it)")
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			m := wire.Member{Name: a[0], MemberAddr: o.Addr, DN: o.DN, ClientURL: o.ClientURL, Async: o.Async}
			if err := c.AddMember(e.ctx, m); err != nil {
				return serverError(err)
			}
			fmt.Fprintf(e.stdout, "member %s added\n", a[0])
			printJoin(e, c, a[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "", "member port `HOST:PORT` of the new member")
	f.StringVar(&o.DN, "dn", "", "subject `DN` of the new member's certificate")
	f.StringVar(&o.CertFile, "cert", "", "take the DN from the new member's certificate `FILE`")
	f.StringVar(&o.ClientURL, "client-url", "", "client `URL` of the new member (https://HOST:PORT)")
	f.BoolVar(&o.Async, "async", false, "add an async member: it follows but never votes")
	// MIRRORKV_CERT names the admin's client certificate; it must not become the new member.
	keepOffEnv(f, "cert")
	return cmd
}

func newMemberListCmd(e *env, conn *connectOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the authorised members",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ms, err := c.Members(e.ctx)
			if err != nil {
				return serverError(err)
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ms)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tADDRESS\tCLIENT URL\tDN")
			for _, m := range ms {
				kind := "failover"
				if m.Async {
					kind = "async"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, kind, m.MemberAddr, orDash(m.ClientURL), m.DN)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the members as JSON")
	return cmd
}

// newMemberOpCmd builds remove, promote and transfer: one member name, one admin call.
func newMemberOpCmd(e *env, conn *connectOptions, verb, short, done string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			switch verb {
			case "remove":
				err = c.RemoveMember(e.ctx, a[0])
			case "promote":
				err = c.Promote(e.ctx, a[0])
			case "transfer":
				err = c.TransferLeadership(e.ctx, a[0])
			}
			if err != nil {
				return serverError(err)
			}
			fmt.Fprintf(e.stdout, "member %s %s\n", a[0], done)
			return nil
		},
	}
}

// dnOfCertFile is the canonical subject DN of the first certificate in path.
func dnOfCertFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read member certificate: %w", err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return "", fmt.Errorf("parse member certificate %s: %w", path, err)
	}
	return pki.DNOf(certs[0]), nil
}

// printJoin says how to start the new member: the member port of the primary to join
// through, and the pin of the member there, so that the new member trusts only that one.
func printJoin(e *env, c *client.Client, name string) {
	st, err := c.Status(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stdout, "start it with --join HOST:PORT --join-pin DN of a running member (mirrorkv member list shows them)\n")
		return
	}
	for _, m := range st.Members {
		if m.Name == st.Primary && m.DN != "" {
			fmt.Fprintf(e.stdout, "start it with: mirrorkv serve --name %s ... --join %s --join-pin %q\n", name, m.MemberAddr, m.DN)
			return
		}
	}
	fmt.Fprintf(e.stdout, "start it with --join HOST:PORT --join-pin DN of a running member (mirrorkv member list shows them)\n")
}
