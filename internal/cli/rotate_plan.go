package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/wire"
)

// phaseText says what each phase changes on the group and what is checked before the next.
var phaseText = map[pki.Phase]struct{ changes, checks string }{
	pki.PhaseNewCA: {
		"make the new CA beside the old one (DIR/next), and the bundles of the later phases (DIR/rotation)",
		"the new CA opens with the passphrase",
	},
	pki.PhaseTrustBoth: {
		"push the old and the new CA (and both CRLs) to every member, which writes them to its DIR/tls and reloads",
		"every member answers, is in sync, and has both CAs in force",
	},
	pki.PhaseLeaves: {
		"each member makes a new key and CSR; the new CA signs it (same DN and SANs); the member installs it",
		"every member serves a certificate of the new CA: its client port and a probe of its member port verify with the new CA alone",
	},
	pki.PhaseWithdraw: {
		"push the new CA alone (and its CRL) to every member",
		"every member trusts the new CA and no longer the old one; the group is in sync",
	},
}

// plan prints the group's trust as each member has it in force and the phases with what
// each changes and checks, marking those verified.
func (r *rotator) plan() error {
	ctx, cancel := r.withTimeout()
	defer cancel()
	if err := r.survey(ctx); err != nil {
		return err
	}
	w := r.e.stdout
	fmt.Fprintf(w, "%s rotation in %s\n", r.kindName(), r.o.Dir)
	fmt.Fprintf(w, "  old CA: %s\n", caLine(r.oldCA))
	if r.newCA != nil {
		fmt.Fprintf(w, "  new CA: %s in %s\n", caLine(r.newCA), pki.NextCADir(r.o.Dir))
	} else {
		fmt.Fprintf(w, "  new CA: not made yet (%s)\n", pki.NextCADir(r.o.Dir))
	}
	fmt.Fprintf(w, "  state:  %s\n\n", r.stateLine())
	r.printMembers()
	fmt.Fprintf(w, "\nphases:\n")
	for i, p := range pki.Phases(r.kind) {
		fmt.Fprintf(w, "%s\n", strings.TrimRight(fmt.Sprintf("  %d %-10s %s", i+1, p, r.mark(p)), " "))
		fmt.Fprintf(w, "    changes: %s\n    checks:  %s\n", phaseText[p].changes, phaseText[p].checks)
	}
	if r.kind == pki.KindClient {
		fmt.Fprintf(w, "  between trust-both and withdraw, reissue the client certificates from the new CA\n")
	}
	r.printBlockers()
	return nil
}

func (r *rotator) stateLine() string {
	switch {
	case r.state == nil:
		return "nothing applied yet"
	case r.state.Applying != pki.PhaseNone:
		return fmt.Sprintf("%s applied but not verified (verified: %s); apply resumes it", r.state.Applying, orNone(r.state.Verified))
	case r.state.Done():
		return "every phase verified; run verify"
	}
	return fmt.Sprintf("verified up to %s", r.state.Verified)
}

func orNone(p pki.Phase) string {
	if p == pki.PhaseNone {
		return "none"
	}
	return string(p)
}

func (r *rotator) mark(p pki.Phase) string {
	if r.state == nil {
		if p == pki.PhaseNewCA {
			return "next"
		}
		return ""
	}
	ps := pki.Phases(r.kind)
	switch {
	case slices.Index(ps, p) <= slices.Index(ps, r.state.Verified):
		return "verified"
	case p == r.state.Next():
		return "next"
	}
	return ""
}

func (r *rotator) printMembers() {
	fmt.Fprintf(r.e.stdout, "members (group %s, primary %s):\n", r.view.Group, r.view.Primary)
	tw := tabwriter.NewWriter(r.e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  NAME\tURL\tSERVES\tISSUER\tUNTIL\tTRUSTS\n")
	for _, t := range r.members {
		if t.err != nil {
			fmt.Fprintf(tw, "  %s\t%s\tunreachable\t\t\t\n", t.name, t.url)
			continue
		}
		leaf := t.info.Chain[0]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", t.name, t.url, leaf.Subject, r.which(t, leaf), caDay(leaf.NotAfter), r.trustLine(t))
	}
	tw.Flush()
}

// which names the CA a member's leaf comes from: old, new, or its issuer's DN.
func (r *rotator) which(t target, leaf wire.CertInfo) string {
	switch {
	case servesFrom(t, r.oldCA):
		return "old CA"
	case servesFrom(t, r.newCA):
		return "new CA"
	}
	return leaf.Issuer
}

func (r *rotator) trustLine(t target) string {
	var parts []string
	if r.trusts(t, r.oldCA) {
		parts = append(parts, "old")
	}
	if r.trusts(t, r.newCA) {
		parts = append(parts, "new")
	}
	bundle := t.info.MemberCAs
	if r.kind == pki.KindClient {
		bundle = t.info.ClientCAs
	}
	if extra := len(bundle) - len(parts); extra > 0 {
		parts = append(parts, fmt.Sprintf("%d other", extra))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// printBlockers names what would refuse the next phase now.
func (r *rotator) printBlockers() {
	next := pki.PhaseNewCA
	if r.state != nil {
		next = r.state.Next()
	}
	if next == pki.PhaseNone {
		fmt.Fprintf(r.e.stdout, "next: mirrorkv ca rotate %s %s\n", map[bool]string{true: "verify", false: "apply"}[next == pki.PhaseNone], r.caFlags())
		return
	}
	for _, t := range r.members {
		if err := r.preflightMember(next, t); err != nil {
			fmt.Fprintf(r.e.stdout, "next phase %s would be refused now:\n  %s\n", next, indent(err.Error()))
			return
		}
	}
	fmt.Fprintf(r.e.stdout, "next: mirrorkv ca rotate apply %s\n", r.caFlags())
}

// verify checks the finished rotation against the group — in sync, every member trusting
// the new CA alone and (for members) serving its certificates — then makes the new CA the
// CA of the directory and retires the old one.
func (r *rotator) verify() error {
	if r.state == nil || !r.state.Done() {
		return fmt.Errorf("the rotation is not finished (%s); run `mirrorkv ca rotate apply %s`", r.stateOrNone(), r.caFlags())
	}
	ctx, cancel := r.withTimeout()
	defer cancel()
	if err := r.waitHealthy(ctx); err != nil {
		return err
	}
	for _, t := range r.members {
		if err := r.checkMember(ctx, pki.PhaseWithdraw, t); err != nil {
			return err
		}
		if r.kind == pki.KindMember && !servesFrom(t, r.newCA) {
			return fmt.Errorf("%s does not serve a certificate of the new CA", t.name)
		}
		fmt.Fprintf(r.e.stdout, "  %s: %s, trusts the new CA only\n", t.name, r.serving(t))
	}
	serial := r.oldCA.SerialNumber.Text(16)
	if err := pki.FinishRotation(r.o.Dir, serial); err != nil {
		return err
	}
	fmt.Fprintf(r.e.stdout, "rotation verified: the group is in sync and nothing trusts the old CA any more\n")
	fmt.Fprintf(r.e.stdout, "%s is now the new CA; the old one is kept in %s/%s/%s\n", r.o.Dir, r.o.Dir, pki.RetiredDir, serial)
	fmt.Fprintf(r.e.stdout, "the members keep the pushed files in DIR/tls; point their flags at the new files when convenient (docs/rotation.md)\n")
	return nil
}

func (r *rotator) serving(t target) string {
	if r.kind == pki.KindClient {
		return "in sync"
	}
	leaf := t.info.Chain[0]
	return fmt.Sprintf("serves %s (serial %s, until %s) from the new CA", leaf.Subject, leaf.Serial, caDay(leaf.NotAfter))
}

func (r *rotator) stateOrNone() string {
	if r.state == nil {
		return "nothing applied yet"
	}
	return r.stateLine()
}

// abort returns the group to the last state every member can live with: the old CA alone
// while no member serves a certificate of the new CA, or old and new trusted when the
// withdrawal was under way.
func (r *rotator) abort() error {
	if r.state == nil {
		return fmt.Errorf("abort: %w", pki.ErrNoRotation)
	}
	ctx, cancel := r.withTimeout()
	defer cancel()
	if err := r.readCRLs(); err != nil {
		return err
	}
	if err := r.survey(ctx); err != nil {
		return err
	}
	moved := slices.ContainsFunc(r.members, func(t target) bool { return t.err == nil && servesFrom(t, r.newCA) })
	to, err := r.state.AbortTo(moved)
	if err != nil {
		return err
	}
	ca, crl, file := r.oldPEM, r.oldCRL, "ca-old.pem"
	if to != pki.PhaseNone {
		ca, crl, file = bundle(r.oldPEM, r.newPEM), bundle(r.oldCRL, r.newCRL), "ca-both.pem"
	}
	var missed []string
	if r.newCA != nil {
		missed = r.pushReachable(ctx, ca, crl)
	}
	if to == pki.PhaseNone {
		if err := pki.AbandonRotation(r.o.Dir, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(r.e.stdout, "aborted: every member trusts the old CA alone; the new CA is kept in %s/%s\n", r.o.Dir, pki.RetiredDir)
	} else {
		r.state.Rolled(to)
		if err := r.state.Save(time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(r.e.stdout, "rolled back to phase %s: every member trusts the old and the new CA\n", to)
	}
	if len(missed) > 0 {
		return fmt.Errorf("members %v did not answer: copy %s to their DIR/tls/%s-ca.pem (and the matching CRL) by hand before starting them", missed, r.rotationFile(file), r.port)
	}
	return nil
}

func (r *rotator) pushReachable(ctx context.Context, ca, crl []byte) []string {
	var missed []string
	push, err := r.trustPush(ca, crl)
	for _, t := range r.members {
		if t.err != nil || err != nil {
			if err != nil {
				fmt.Fprintf(r.e.stderr, "  %s: %v\n", t.name, err)
			}
			missed = append(missed, t.name)
			continue
		}
		if _, err := r.c.PushTrust(ctx, t.url, push); err != nil {
			fmt.Fprintf(r.e.stderr, "  %s: %v\n", t.name, err)
			missed = append(missed, t.name)
			continue
		}
		fmt.Fprintf(r.e.stdout, "  %s: %s port trust rolled back\n", t.name, r.port)
	}
	return missed
}
