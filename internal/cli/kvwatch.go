package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

type kvWatchOptions struct {
	From     int64         // --from
	Exact    bool          // --exact
	Stale    bool          // --stale
	JSON     bool          // --json
	Progress bool          // --progress
	Count    int           // --count
	Idle     time.Duration // --idle-timeout
}

func newKVWatchCmd(e *env, conn *connectOptions) *cobra.Command {
	var o kvWatchOptions
	cmd := &cobra.Command{
		Use:   "watch PREFIX",
		Short: "print every change of the keys under PREFIX as it happens, resuming across member failures",
		Long: `Print one line per change of a key that starts with PREFIX (or of the key PREFIX,
with --exact): the revision, put or delete, the key, and the new value. The watch starts
after the current revision, or at --from REV; it goes on through member failures by
resuming on another member from the revision after the last one printed, so no change is
missed or printed twice. Stop it with Ctrl-C.

A --from older than the members still keep fails with reason 410 watch-compacted: list
the keys (mirrorkv kv list --prefix P), then watch from the listing's revision + 1.`,
		Example: `  mirrorkv kv watch app/
  mirrorkv kv watch app/ --from 1042        # every change from revision 1042 on
  mirrorkv kv watch app/config --exact --json # one key, as NDJSON lines of the API`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if cmd.Flags().Changed("from") && o.From <= 0 {
				return usagef("--from %d: revisions start at 1", o.From)
			}
			if o.Count < 0 {
				return usagef("--count %d: want 0 (no limit) or more", o.Count)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return watchKeys(e, c, a[0], o)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.From, "from", 0, "start at revision `REV` instead of after the current one")
	f.BoolVar(&o.Exact, "exact", false, "watch the one key PREFIX names")
	f.BoolVar(&o.Stale, "stale", false, "let any member serve the watch from its own copy, even without a primary")
	f.BoolVar(&o.JSON, "json", false, "print the API's NDJSON lines (events as base64 values, and progress lines)")
	f.BoolVar(&o.Progress, "progress", false, "print a line when a member reports the watch up to date while idle")
	f.IntVar(&o.Count, "count", 0, "stop after `N` changes (0: run until interrupted)")
	f.DurationVar(&o.Idle, "idle-timeout", client.DefaultWatchIdleTimeout, "resume through another member after this long without a line from the one serving the watch")
	return cmd
}

func watchKeys(e *env, c *client.Client, prefix string, o kvWatchOptions) error {
	opts := []client.WatchOption{client.WatchIdleTimeout(o.Idle)}
	if o.From > 0 {
		opts = append(opts, client.From(o.From))
	}
	if o.Exact {
		opts = append(opts, client.ExactKey())
	}
	if o.Stale {
		opts = append(opts, client.StaleWatch())
	}
	enc := json.NewEncoder(e.stdout)
	seen := 0
	for resp, err := range c.Watch(e.ctx, prefix, opts...) {
		if err != nil {
			if ce, ok := errors.AsType[*client.CompactedError](err); ok {
				return fmt.Errorf("%w; the oldest revision kept is %d", ce, ce.Oldest)
			}
			return serverError(err)
		}
		if o.JSON {
			if len(resp.Events) > 0 || o.Progress {
				if err := enc.Encode(resp); err != nil {
					return fmt.Errorf("write event: %w", err)
				}
			}
		} else {
			printEvents(e, resp, o.Progress)
		}
		if seen += len(resp.Events); o.Count > 0 && seen >= o.Count {
			return nil
		}
	}
	return nil // interrupted
}

func printEvents(e *env, resp wire.WatchResponse, progress bool) {
	if len(resp.Events) == 0 && progress {
		fmt.Fprintf(e.stdout, "%d\tprogress\n", resp.Revision)
	}
	for _, ev := range resp.Events {
		if ev.Type == wire.EventDelete {
			fmt.Fprintf(e.stdout, "%d\tdelete\t%s\n", ev.Revision, displayKey(ev.Key))
			continue
		}
		fmt.Fprintf(e.stdout, "%d\tput\t%s\t%s\n", ev.Revision, displayKey(ev.Key), displayValue(ev.Value))
	}
}

// displayValue prints a value as is when a terminal shows it plainly, and quoted otherwise.
func displayValue(v []byte) string {
	s := string(v)
	if strconv.CanBackquote(s) {
		return s
	}
	return strconv.Quote(s)
}
