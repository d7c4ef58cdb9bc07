package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func newLeaseCmd(e *env) *cobra.Command {
	var conn connectOptions
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "grant, keep alive, revoke and list leases",
		Long: `A lease has a TTL; keys put with it (mirrorkv kv put --lease ID) are deleted, all at
one revision, when it is revoked or when a TTL passes without a keep-alive.`,
	}
	addConnectFlags(cmd, &conn)
	cmd.AddCommand(newLeaseGrantCmd(e, &conn), newLeaseKeepAliveCmd(e, &conn), newLeaseRevokeCmd(e, &conn), newLeaseListCmd(e, &conn))
	return cmd
}

// parseTTL reads a TTL as a duration (30s, 2m) or a whole number of seconds.
func parseTTL(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("TTL %q: give seconds (60) or a duration (1m30s)", s)
	}
	return d, nil
}

func parseLeaseArg(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("lease ID %q: give the number `mirrorkv lease grant` printed", s)
	}
	return id, nil
}

func newLeaseGrantCmd(e *env, conn *connectOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "grant TTL",
		Short: "grant a lease; prints its ID, then the TTL granted in seconds",
		Example: `  ID=$(mirrorkv lease grant 30s | head -1)
  mirrorkv kv put --lease "$ID" svc/web/host1 10.0.0.1`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			ttl, err := parseTTL(a[0])
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			l, err := c.Grant(e.ctx, ttl)
			if err != nil {
				return serverError(err)
			}
			fmt.Fprintf(e.stdout, "%d\n%d\n", l.ID, l.TTL)
			return nil
		},
	}
}

type leaseKeepAliveOptions struct {
	Once bool // --once
}

func newLeaseKeepAliveCmd(e *env, conn *connectOptions) *cobra.Command {
	var o leaseKeepAliveOptions
	cmd := &cobra.Command{
		Use:   "keepalive ID",
		Short: "keep a lease alive until interrupted (or once, with --once, printing the TTL)",
		Example: `  mirrorkv lease keepalive 1234 &     # until killed
  mirrorkv lease keepalive 1234 --once`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			id, err := parseLeaseArg(a[0])
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			l, err := c.KeepAlive(e.ctx, id)
			if err != nil {
				return serverError(err)
			}
			if o.Once {
				fmt.Fprintln(e.stdout, l.TTL)
				return nil
			}
			if err := c.KeepAliveUntil(e.ctx, l); err != nil {
				return serverError(err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.Once, "once", false, "send one keep-alive and print the TTL")
	return cmd
}

func newLeaseRevokeCmd(e *env, conn *connectOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "revoke a lease and delete its keys; prints the revision, then each key deleted",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			id, err := parseLeaseArg(a[0])
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			l, err := c.Revoke(e.ctx, id)
			if err != nil {
				return serverError(err)
			}
			fmt.Fprintln(e.stdout, l.Revision)
			for _, k := range l.Keys {
				fmt.Fprintln(e.stdout, displayKey(k))
			}
			return nil
		},
	}
}

func newLeaseListCmd(e *env, conn *connectOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list leases: ID, TTL in seconds and number of keys, tab-separated",
		Args:  args(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ls, err := c.Leases(e.ctx)
			if err != nil {
				return serverError(err)
			}
			for _, l := range ls {
				fmt.Fprintf(e.stdout, "%d\t%d\t%d\n", l.ID, l.TTL, l.KeyCount)
			}
			return nil
		},
	}
}
