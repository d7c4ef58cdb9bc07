package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
)

func newKVCmd(e *env) *cobra.Command {
	var conn connectOptions
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "put, get, delete, list and watch keys; apply transactions",
		Long: `Read and write keys over the HTTPS API with a client certificate. Reads are
linearizable unless --stale is given.`,
	}
	addConnectFlags(cmd, &conn)
	cmd.AddCommand(newKVPutCmd(e, &conn), newKVGetCmd(e, &conn), newKVDeleteCmd(e, &conn), newKVListCmd(e, &conn), newKVTxnCmd(e, &conn), newKVWatchCmd(e, &conn))
	return cmd
}

type kvPutOptions struct {
	IfRevision int64 // --if-revision
	Create     bool  // --create
	Lease      int64 // --lease
}

func newKVPutCmd(e *env, conn *connectOptions) *cobra.Command {
	var o kvPutOptions
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "set a key (the value from the argument, or from stdin); prints the new revision",
		Example: `  mirrorkv kv put app/config '{"debug":false}'
  mirrorkv kv put app/logo < logo.png
  mirrorkv kv put app/config v2 --if-revision 41   # compare-and-set
  mirrorkv kv put app/lock me --create             # only if absent
  mirrorkv kv put svc/web/host1 up --lease 1234     # deleted with lease 1234`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if o.Create && cmd.Flags().Changed("if-revision") {
				return usagef("--create and --if-revision exclude each other")
			}
			if cmd.Flags().Changed("lease") && (o.Create || cmd.Flags().Changed("if-revision")) {
				return usagef("--lease does not combine with --create or --if-revision; use a transaction to test the key first")
			}
			if cmd.Flags().Changed("lease") && o.Lease <= 0 {
				return usagef("--lease %d: give the ID `mirrorkv lease grant` printed", o.Lease)
			}
			if cmd.Flags().Changed("if-revision") && o.IfRevision <= 0 {
				return usagef("--if-revision %d: revisions start at 1; use --create for a key that must not exist", o.IfRevision)
			}
			value, err := putValue(e, a)
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var rev int64
			switch {
			case o.Create:
				rev, err = c.Create(e.ctx, a[0], value)
			case cmd.Flags().Changed("if-revision"):
				rev, err = c.PutIf(e.ctx, a[0], value, o.IfRevision)
			case cmd.Flags().Changed("lease"):
				rev, err = c.PutWithLease(e.ctx, a[0], value, o.Lease)
			default:
				rev, err = c.Put(e.ctx, a[0], value)
			}
			if err != nil {
				return serverError(err)
			}
			fmt.Fprintln(e.stdout, rev)
			return nil
		},
	}
	cmd.Flags().Int64Var(&o.IfRevision, "if-revision", 0, "write only if the key is at revision `N` (compare-and-set)")
	cmd.Flags().BoolVar(&o.Create, "create", false, "write only if the key does not exist")
	cmd.Flags().Int64Var(&o.Lease, "lease", 0, "attach the key to lease `ID`: it is deleted when the lease ends (a put without it detaches the key)")
	return cmd
}

func putValue(e *env, a []string) ([]byte, error) {
	if len(a) == 2 {
		return []byte(a[1]), nil
	}
	value, err := io.ReadAll(e.stdin)
	if err != nil {
		return nil, fmt.Errorf("read the value from stdin: %w", err)
	}
	return value, nil
}

type kvGetOptions struct {
	Stale    bool // --stale
	Revision bool // --revision
}

func newKVGetCmd(e *env, conn *connectOptions) *cobra.Command {
	var o kvGetOptions
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "print a key's value (raw bytes, nothing added)",
		Example: `  mirrorkv kv get app/config
  mirrorkv kv get app/config --revision   # the revision only, for --if-revision
  mirrorkv kv get app/config --stale      # from the member's own copy, even without a primary`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []client.GetOption
			if o.Stale {
				opts = append(opts, client.Stale())
			}
			value, rev, err := c.Get(e.ctx, a[0], opts...)
			if err != nil {
				return serverError(err)
			}
			if o.Revision {
				fmt.Fprintln(e.stdout, rev)
				return nil
			}
			_, err = e.stdout.Write(value)
			return err
		},
	}
	cmd.Flags().BoolVar(&o.Stale, "stale", false, "read the answering member's own copy without asking the primary")
	cmd.Flags().BoolVar(&o.Revision, "revision", false, "print the key's revision instead of its value")
	return cmd
}

func newKVDeleteCmd(e *env, conn *connectOptions) *cobra.Command {
	var ifRevision int64
	cmd := &cobra.Command{
		Use:   "delete KEY",
		Short: "delete a key; prints the store's revision after the delete",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			conditional := cmd.Flags().Changed("if-revision")
			if conditional && ifRevision <= 0 {
				return usagef("--if-revision %d: revisions start at 1", ifRevision)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var rev int64
			if conditional {
				rev, err = c.DeleteIf(e.ctx, a[0], ifRevision)
			} else {
				rev, err = c.Delete(e.ctx, a[0])
			}
			if err != nil {
				return serverError(err)
			}
			fmt.Fprintln(e.stdout, rev)
			return nil
		},
	}
	cmd.Flags().Int64Var(&ifRevision, "if-revision", 0, "delete only if the key is at revision `N`")
	return cmd
}

type kvListOptions struct {
	Prefix string // --prefix
	Limit  int    // --limit
	JSON   bool   // --json
}

func newKVListCmd(e *env, conn *connectOptions) *cobra.Command {
	var o kvListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list keys with their revisions (all pages, up to --limit keys)",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if o.Limit < 0 {
				return usagef("--limit %d: want 0 (no limit) or more", o.Limit)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return listKeys(e, c, o)
		},
	}
	cmd.Flags().StringVar(&o.Prefix, "prefix", "", "list only keys that start with `P`")
	cmd.Flags().IntVar(&o.Limit, "limit", 0, "list at most `N` keys (0: all)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print one JSON object per key (key, value as base64, revision)")
	return cmd
}

// listKeys pages through the listing, so that --limit is the only bound the user sees.
func listKeys(e *env, c *client.Client, o kvListOptions) error {
	enc := json.NewEncoder(e.stdout)
	for kv, err := range c.ListAll(e.ctx, o.Prefix, o.Limit) {
		if err != nil {
			return serverError(err)
		}
		if o.JSON {
			if err := enc.Encode(kv); err != nil {
				return fmt.Errorf("write listing: %w", err)
			}
		} else {
			fmt.Fprintf(e.stdout, "%s\t%d\n", displayKey(kv.Key), kv.Revision)
		}
	}
	return nil
}

// displayKey quotes a key only when it holds spaces or characters a terminal would not show.
func displayKey(k string) string {
	if k != "" && strconv.CanBackquote(k) && !strings.ContainsAny(k, " \t`") {
		return k
	}
	return strconv.Quote(k)
}
