package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
)

// connectOptions are the connection settings shared by every command that talks to a group
// (kv, status, member, bench).
type connectOptions struct {
	Endpoints string        // --endpoints
	CACert    string        // --cacert
	Cert      string        // --cert
	Key       string        // --key
	CRL       string        // --crl
	Timeout   time.Duration // --timeout
}

// addConnectFlags binds the connection flags to o on cmd and its subcommands.
func addConnectFlags(cmd *cobra.Command, o *connectOptions) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.Endpoints, "endpoints", "", "comma-separated client `URLs` of the members")
	f.StringVar(&o.CACert, "cacert", "", "CA `FILE` that signed the members' certificates")
	f.StringVar(&o.Cert, "cert", "", "client certificate `FILE`")
	f.StringVar(&o.Key, "key", "", "client key `FILE`")
	f.StringVar(&o.CRL, "crl", "", "CRL `FILE` of the members' CA: a member whose certificate it lists is refused")
	f.DurationVar(&o.Timeout, "timeout", client.DefaultTimeout, "time limit of one request, failover included")
}

// client checks the settings and builds a client. Missing settings are usage mistakes.
func (o *connectOptions) client() (*client.Client, error) {
	var eps []string
	for ep := range strings.SplitSeq(o.Endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	var missing []string
	if len(eps) == 0 {
		missing = append(missing, "--endpoints (or MIRRORKV_ENDPOINTS)")
	}
	for _, m := range []struct{ v, name string }{{o.CACert, "--cacert (or MIRRORKV_CACERT)"}, {o.Cert, "--cert (or MIRRORKV_CERT)"}, {o.Key, "--key (or MIRRORKV_KEY)"}} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, usagef("missing %s; mirrorkv needs the members' URLs and a client certificate (mirrorkv ca issue --client)", strings.Join(missing, ", "))
	}
	tlsCfg, err := client.LoadTLS(o.CACert, o.Cert, o.Key, client.WithCRL(o.CRL))
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		return nil, usagef("--timeout %s: want a positive duration", o.Timeout)
	}
	c, err := client.New(client.Config{Endpoints: eps, TLS: tlsCfg, Timeout: o.Timeout})
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// serverError adds the server's fix to an error from the client, on its own line, so that
// the message on stderr says what to do.
func serverError(err error) error {
	if e, ok := errors.AsType[*client.Error](err); ok && e.Fix != "" {
		return fmt.Errorf("%w\nfix: %s", err, e.Fix)
	}
	return err
}
