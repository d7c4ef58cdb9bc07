package cli

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/node"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// recoverProbeTimeout bounds the status request to each old failover member.
const recoverProbeTimeout = 3 * time.Second

type memberRecoverOptions struct {
	From string   // --from: the member to make the primary
	Dir  string   // --dir: its data directory
	Keep []string // --keep: async members to keep following
	Yes  bool     // --yes: confirmation
}

func newMemberRecoverCmd(e *env, conn *connectOptions) *cobra.Command {
	var o memberRecoverOptions
	cmd := &cobra.Command{
		Use:   "recover --from NAME --dir DIR --yes",
		Short: "disaster recovery: make a stopped async member the primary of a new configuration",
		Long: `When no majority of the failover members can be reached, make the async member NAME the
only voter of a new configuration with the data it has (raft's RecoverCluster). Stop the
member first and run this on its host with its data directory; the client certificate of
the connection flags is used to ask every old failover member for its status, and the
recovery is refused while a majority of them answers. Every member but NAME (and the async
members named with --keep) loses its authorisation: an old member that comes back is refused
until it is added again, so two primaries can never both serve. The report says which
writes may be missing. Start the member again afterwards: it leads the new configuration.`,
		Example: `  mirrorkv member recover --from dr1 --dir /var/lib/mirrorkv --yes`,
		Args:    args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if o.From == "" || o.Dir == "" {
				return usagef("member recover needs --from NAME and --dir DIR (the stopped member's data directory)")
			}
			if !o.Yes {
				return usagef("member recover drops every other member from the group: give --yes to confirm")
			}
			ms, err := node.RecoveryMembers(o.Dir, o.From)
			if err != nil {
				return err
			}
			if err := checkNoMajority(e, conn, ms, o.From); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			rec, err := node.Recover(o.Dir, o.From, o.Keep, log)
			if err != nil {
				return err
			}
			writeRecovery(e, rec)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "the async member `NAME` to make the primary; it must be stopped")
	f.StringVar(&o.Dir, "dir", "", "its data `DIR`ectory")
	f.StringSliceVar(&o.Keep, "keep", nil, "async member `NAMES` to keep following the new configuration")
	f.BoolVar(&o.Yes, "yes", false, "confirm: every other member loses its authorisation")
	return cmd
}

// checkNoMajority asks every failover member of ms but from for its status and refuses
// with reason.MajorityReachable when a majority of them answers, or any knows a primary.
func checkNoMajority(e *env, conn *connectOptions, ms []store.Member, from string) error {
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	var voters, answered []string
	for _, m := range ms {
		if m.Async || m.Name == from {
			continue
		}
		voters = append(voters, m.Name)
		if m.ClientURL == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(e.ctx, recoverProbeTimeout)
		st, err := c.StatusOf(ctx, m.ClientURL)
		cancel()
		if err != nil {
			continue
		}
		answered = append(answered, m.Name)
		if st.Role == wire.RolePrimary || st.Primary != "" {
			return majorityReachable(fmt.Errorf("refused: %s answers and knows the primary %q; the group is not lost", m.Name, st.Primary))
		}
	}
	if len(voters) == 0 || len(answered)*2 > len(voters) {
		return majorityReachable(fmt.Errorf("refused: %d of the %d failover members (%s) answer",
			len(answered), len(voters), strings.Join(answered, ", ")))
	}
	fmt.Fprintf(e.stdout, "failover members %s: %d of %d answer, no majority\n", strings.Join(voters, ", "), len(answered), len(voters))
	return nil
}

// majorityReachable is the refusal of a recovery while the group is not lost, with its code
// and fix for the operator.
func majorityReachable(err error) error {
	c := reason.MajorityReachable
	return fmt.Errorf("%w (reason %d %s)\nfix: %s", reason.Wrap(c, err), int(c), c.Name(), c.Fix())
}

// writeRecovery prints what a recovery did and which writes may be missing.
func writeRecovery(e *env, rec wire.Recovery) {
	fmt.Fprintf(e.stdout, "member %s is now the only voter of a new configuration; start it and it becomes the primary\n", rec.From)
	fmt.Fprintf(e.stdout, "its store had applied revision %d (raft index %d); its raft log held writes up to revision %d (raft index %d), now applied\n",
		rec.Revision, rec.AppliedIndex, rec.LastRevision, rec.LastIndex)
	fmt.Fprintf(e.stdout, "possibly missing: every write the old group acknowledged with a revision above %d\n", rec.LastRevision)
	removed := slices.Clone(rec.Removed)
	if len(removed) == 0 {
		removed = []string{"none"}
	}
	fmt.Fprintf(e.stdout, "authorisation withdrawn from: %s (refused until added again with mirrorkv member add)\n", strings.Join(removed, ", "))
}
