package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

type statusOptions struct {
	JSON        bool          // --json
	Watch       bool          // --watch
	Interval    time.Duration // --interval
	ContactWarn time.Duration // --warn-contact
}

// statusView is how renderStatus draws: bars for members catching up, and the silence
// after which a member's last contact with the primary is flagged.
type statusView struct {
	bars        bool
	contactWarn time.Duration
}

// defaultContactWarn is --warn-contact's default: ten times the default heartbeat timeout.
const defaultContactWarn = 10 * time.Second

func newStatusCmd(e *env) *cobra.Command {
	var conn connectOptions
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the group: primary, roles, sync progress, lag and certificate expiry",
		Long: `Show the group as the first member that answers sees it: one row per member with its
role (PRIMARY, STANDBY, ASYNC or UNSYNC), whether it votes, its address and certificate DN,
its log lag, sync percent, last contact with the primary, certificate expiry, and the
reason code of anything wrong. Under the table, a WARN line for what an operator must act
on, with its fix: each member that is refused or unwell for a reason, each member that has
not heard from the primary for longer than --warn-contact, and each certificate, CA or CRL
in the members' trust material that runs out within 30 days (or has), with the members
that hold it.

--json prints the raw GET /v1/status body; --watch redraws every --interval and shows a
progress bar for members that are catching up.`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if o.Watch && o.JSON {
				return usagef("--watch and --json exclude each other")
			}
			if o.Interval <= 0 {
				return usagef("--interval %s: want a positive duration", o.Interval)
			}
			if o.ContactWarn <= 0 {
				return usagef("--warn-contact %s: want a positive duration", o.ContactWarn)
			}
			view := statusView{contactWarn: o.ContactWarn}
			c, err := conn.client()
			if err != nil {
				return err
			}
			defer c.Close()
			if o.Watch {
				view.bars = true
				return watchStatus(e.ctx, e.stdout, c.Status, o.Interval, view)
			}
			st, err := c.Status(e.ctx)
			if err != nil {
				return serverError(err)
			}
			if o.JSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return renderStatus(e.stdout, st, time.Now(), view)
		},
	}
	addConnectFlags(cmd, &conn)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the raw status as JSON")
	cmd.Flags().BoolVar(&o.Watch, "watch", false, "redraw every --interval until interrupted")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "redraw period of --watch")
	cmd.Flags().DurationVar(&o.ContactWarn, "warn-contact", defaultContactWarn, "flag a member that has not heard from the primary for longer than `D`")
	return cmd
}

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\033[H\033[2J"

// watchStatus redraws the status every interval until ctx ends. A failed fetch is shown in
// place of the table and does not stop the watch: the point is to see a group recover.
func watchStatus(ctx context.Context, w io.Writer, fetch func(context.Context) (wire.Status, error), interval time.Duration, view statusView) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		buf.WriteString(clearScreen)
		st, err := fetch(ctx)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintf(&buf, "%s  %v\n", now.Format(time.TimeOnly), serverError(err))
		default:
			if err := renderStatus(&buf, st, now, view); err != nil {
				return err
			}
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("write status: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// renderStatus writes the status for people: a summary, one row per member, and what to act
// on. now fixes the relative times, so that golden files are stable.
func renderStatus(w io.Writer, st wire.Status, now time.Time, view statusView) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "group %s  primary %s", orDash(st.Group), orDash(st.Primary))
	if st.PrimarySince != nil {
		fmt.Fprintf(&b, " (since %s, %s)", st.PrimarySince.UTC().Format(time.RFC3339), ago(now, *st.PrimarySince))
	}
	fmt.Fprintf(&b, "  active %d  sync %d/%d\n", st.ActiveNodes, st.SyncNodes, len(st.Members))
	fmt.Fprintf(&b, "answered by %s: %s (was %s)  applied %d  commit %d\n",
		st.Node, orDash(string(st.Role)), orDash(string(st.PreviousRole)), st.AppliedIndex, st.CommitIndex)
	if st.Reason.Code != 0 {
		fmt.Fprintf(&b, "reason %d: %s\n", st.Reason.Code, st.Reason.Text)
	}
	writePreferred(&b, st)
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tVOTER\tADDRESS\tDN\tLAG\tSYNC%\tLAST CONTACT\tCERT EXPIRES\tREASON")
	for _, m := range st.Members {
		name := m.Name
		if m.Name == st.Node {
			name += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", name, orDash(string(m.Role)), yesNo(m.Voter),
			orDash(m.MemberAddr), orDash(m.DN), m.Lag, percent(m.SyncPercent), lastContact(now, m), expiry(now, m.CertNotAfter), reasonCell(m.Reason))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("render status: %w", err)
	}
	b.WriteString("(* answered this request)\n")
	writeMemberWarnings(&b, now, st, view.contactWarn)
	writeExpiries(&b, now, st.Members)
	if view.bars {
		writeBars(&b, st.Members)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// writeMemberWarnings writes a WARN line, with its fix, for each member whose own reason
// code says something is wrong (refused, catching up, a full disk), and for each member that
// has not heard from the primary for longer than contactWarn.
func writeMemberWarnings(b *bytes.Buffer, now time.Time, st wire.Status, contactWarn time.Duration) {
	var lines []string
	for _, m := range st.Members {
		if code := reason.Code(m.Reason.Code); code != reason.OK {
			line := fmt.Sprintf("WARN %s: %s, reason %d %s: %s", m.Name, orDash(string(m.Role)), code, code.Name(), m.Reason.Text)
			if fix := code.Fix(); fix != "" {
				line += "\n     fix: " + fix
			}
			lines = append(lines, line)
		}
		if m.Role != wire.RolePrimary && st.Primary != "" && m.LastContact != nil && now.Sub(*m.LastContact) > contactWarn {
			lines = append(lines, fmt.Sprintf("WARN %s: no contact with the primary for %s (more than %s)\n     fix: check that %s runs and that the member port %s is reachable from %s",
				m.Name, roughly(now.Sub(*m.LastContact)), contactWarn, m.Name, orDash(m.MemberAddr), st.Primary))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
}

// writePreferred writes the preferred primary, if any, and why it is or is not in force.
func writePreferred(b *bytes.Buffer, st wire.Status) {
	if st.Preferred == "" {
		return
	}
	fmt.Fprintf(b, "preferred primary %s: ", st.Preferred)
	if r := st.PreferredReason; r != nil && r.Code != 0 {
		fmt.Fprintf(b, "not in force, %d %s\n", r.Code, r.Text)
		return
	}
	b.WriteString("in force\n")
}

// writeExpiries writes a WARN line for each certificate, CA or CRL that runs out within 30
// days (or has) in the members' trust material, naming the members that hold it, and the
// fix under it. A CA is in every member's bundle: it gets one line, not one per member.
func writeExpiries(b *bytes.Buffer, now time.Time, members []wire.MemberStatus) {
	type held struct {
		x     wire.Expiry
		names []string
	}
	var list []*held
	byKey := map[string]*held{}
	for _, m := range members {
		for _, x := range m.Expiries {
			key := x.Port + "|" + x.Material + "|" + x.Subject + "|" + x.At.String()
			h := byKey[key]
			if h == nil {
				h = &held{x: x}
				byKey[key] = h
				list = append(list, h)
			}
			h.names = append(h.names, m.Name)
		}
	}
	if len(list) == 0 {
		return
	}
	slices.SortStableFunc(list, func(a, b *held) int { return a.x.At.Compare(b.x.At) })
	b.WriteString("\n")
	for _, h := range list {
		fmt.Fprintf(b, "WARN %s: %s\n", strings.Join(h.names, ", "), describeExpiry(now, h.x))
		if fix := reason.Code(h.x.Reason.Code).Fix(); fix != "" {
			fmt.Fprintf(b, "     fix: %s\n", fix)
		}
	}
}

// describeExpiry says what runs out and when, for a WARN line.
func describeExpiry(now time.Time, x wire.Expiry) string {
	what, verb, past := fmt.Sprintf("%s %s", x.Material, x.Subject), "expires", "expired"
	switch x.Material {
	case "leaf":
		what = "certificate " + x.Subject
	case "ca":
		what = fmt.Sprintf("CA %s in the %s port's bundle", x.Subject, x.Port)
	case "crl":
		what = fmt.Sprintf("CRL of %s on the %s port", x.Subject, x.Port)
		verb, past = "reaches its next update", "passed its next update"
	}
	stamp := x.At.UTC().Format("2006-01-02 15:04 UTC")
	if d := x.At.Sub(now); d > 0 {
		return fmt.Sprintf("%s %s %s (in %s)", what, verb, stamp, roughly(d))
	}
	return fmt.Sprintf("%s %s %s (%s)", what, past, stamp, ago(now, x.At))
}

// writeBars draws a progress bar per member that is catching up.
func writeBars(b *bytes.Buffer, members []wire.MemberStatus) {
	const width = 30
	drawn := false
	for _, m := range members {
		if m.Role != wire.RoleUnsync || m.SyncPercent < 0 {
			continue
		}
		p := min(max(m.SyncPercent, 0), 100)
		done := int(p / 100 * width)
		if !drawn {
			b.WriteString("\n")
			drawn = true
		}
		fmt.Fprintf(b, "%-12s [%s%s] %5.1f%%  lag %d\n", m.Name, strings.Repeat("#", done), strings.Repeat(".", width-done), p, m.Lag)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// percent prints the sync percent; negative means "not applicable", as in Amlen's
// PctSyncCompletion of -1.
func percent(p float64) string {
	if p < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", p)
}

func lastContact(now time.Time, m wire.MemberStatus) string {
	if m.Role == wire.RolePrimary {
		return "-"
	}
	if m.LastContact == nil {
		return "never"
	}
	return ago(now, *m.LastContact)
}

func expiry(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(now)
	if d < 0 {
		return t.UTC().Format(time.DateOnly) + " (EXPIRED)"
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.DateOnly), roughly(d))
}

func reasonCell(r wire.Reason) string {
	if r.Code == 0 {
		return "-"
	}
	return fmt.Sprintf("%d %s", r.Code, r.Text)
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return roughly(d) + " ago"
}

// roughly rounds a duration to what a person reads at a glance.
func roughly(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
