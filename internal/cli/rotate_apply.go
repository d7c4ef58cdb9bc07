package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// apply runs the next phase, or every remaining one with --all, each verified against the
// group before the next; the state is saved before and after each, so that any stop resumes.
func (r *rotator) apply() error {
	if r.state == nil {
		r.state = pki.NewRotation(r.o.Dir, r.kind, time.Now())
	}
	for {
		p := r.state.Next()
		if p == pki.PhaseNone {
			fmt.Fprintf(r.e.stdout, "every phase is verified; finish with: mirrorkv ca rotate verify %s\n", r.caFlags())
			return nil
		}
		if r.kind == pki.KindClient && p == pki.PhaseWithdraw && r.o.All && r.state.Verified == pki.PhaseTrustBoth && r.state.Applying == pki.PhaseNone {
			r.printReissue()
			return nil
		}
		if err := r.runPhase(p); err != nil {
			return err
		}
		if !r.o.All || r.state.Done() {
			r.printNext()
			return nil
		}
	}
}

func (r *rotator) runPhase(p pki.Phase) error {
	ctx, cancel := r.withTimeout()
	defer cancel()
	if err := r.preflight(ctx, p); err != nil {
		return err
	}
	if err := r.state.Begin(p); err != nil {
		return err
	}
	if err := r.state.Save(time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(r.e.stdout, "phase %s: %s\n", p, phaseText[p].changes)
	if err := r.do(ctx, p); err != nil {
		return fmt.Errorf("phase %s: %w\nthe phase stays open: fix the cause and run `mirrorkv ca rotate apply %s` again, or `abort`", p, err, r.caFlags())
	}
	if err := r.check(ctx, p); err != nil {
		return fmt.Errorf("phase %s applied but not verified: %w\nrun `mirrorkv ca rotate apply %s` again once it is fixed", p, err, r.caFlags())
	}
	if err := r.state.Verify(p); err != nil {
		return err
	}
	if err := r.state.Save(time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(r.e.stdout, "phase %s verified: %s\n", p, phaseText[p].checks)
	return nil
}

func (r *rotator) do(ctx context.Context, p pki.Phase) error {
	switch p {
	case pki.PhaseNewCA:
		return r.makeNewCA()
	case pki.PhaseTrustBoth:
		return r.pushAll(ctx, p, bundle(r.oldPEM, r.newPEM), bundle(r.oldCRL, r.newCRL))
	case pki.PhaseLeaves:
		return r.moveLeaves(ctx)
	case pki.PhaseWithdraw:
		return r.pushAll(ctx, p, r.newPEM, r.newCRL)
	}
	return fmt.Errorf("unknown phase %q", p)
}

// preflight refuses a phase that would cut a member off: every member must answer, trust
// what the phase relies on, and (before the withdrawal) serve a certificate of the new CA.
func (r *rotator) preflight(ctx context.Context, p pki.Phase) error {
	if err := r.readCRLs(); err != nil {
		return err
	}
	if err := r.survey(ctx); err != nil {
		return err
	}
	for _, t := range r.members {
		if err := r.preflightMember(p, t); err != nil {
			return err
		}
	}
	if r.kind == pki.KindClient && p == pki.PhaseWithdraw {
		return r.checkOwnClientCert()
	}
	return nil
}

func (r *rotator) preflightMember(p pki.Phase, t target) error {
	if t.err != nil {
		return blocked(p, t.name, t.url, "is unreachable: "+indent(t.err.Error()), r.byHand(p, t.name))
	}
	switch {
	case p == pki.PhaseLeaves && !r.trusts(t, r.newCA),
		p == pki.PhaseWithdraw && !r.trusts(t, r.newCA):
		return blocked(p, t.name, t.url, "does not trust the new CA (restored from a backup, or its DIR/tls changed by hand?)",
			fmt.Sprintf("on %s, copy %s to DIR/tls/%s-ca.pem and %s to DIR/tls/%s-crl.pem (mode 0600), send it SIGHUP, and run apply again",
				t.name, r.rotationFile("ca-both.pem"), r.port, r.rotationFile("crl-both.pem"), r.port))
	case p == pki.PhaseWithdraw && r.kind == pki.KindMember && !servesFrom(t, r.newCA):
		return blocked(p, t.name, t.url, "still serves a certificate of the old CA", "run `mirrorkv ca rotate apply` for the leaves phase first")
	}
	return nil
}

// byHand says how to bring an unreachable member along: start it, remove it, or give it the
// phase's files itself.
func (r *rotator) byHand(p pki.Phase, name string) string {
	fix := fmt.Sprintf("start %s and run `mirrorkv ca rotate apply %s` again, or remove it from the group (`mirrorkv member remove %s`)", name, r.caFlags(), name)
	file, crl := "ca-both.pem", "crl-both.pem"
	switch p {
	case pki.PhaseNewCA, pki.PhaseLeaves:
		return fix
	case pki.PhaseWithdraw:
		file, crl = "ca-new.pem", "crl-new.pem"
	}
	return fix + fmt.Sprintf("; to bring it along by hand while it is down, copy %s to its DIR/tls/%s-ca.pem and %s to DIR/tls/%s-crl.pem (mode 0600)",
		r.rotationFile(file), r.port, r.rotationFile(crl), r.port)
}

func (r *rotator) rotationFile(name string) string {
	return filepath.Join(r.o.Dir, pki.RotationFilesDir, name)
}

// checkOwnClientCert refuses to withdraw the old client CA while this command's own admin
// certificate comes from it: the withdrawal would lock the operator out.
func (r *rotator) checkOwnClientCert() error {
	certs, err := readCertFile("client certificate", r.o.conn.Cert)
	if err != nil {
		return err
	}
	if certs[0].CheckSignatureFrom(r.newCA) != nil {
		code := reason.RotationBlocked
		return reason.Wrap(code, fmt.Errorf("phase withdraw: this command's admin certificate %s comes from the old client CA: the withdrawal would lock you out (reason %d %s)\nfix: issue one from the new CA (mirrorkv ca issue --dir %s --client --access admin --name NAME --out DIR) and run apply with --cert and --key of it",
			r.o.conn.Cert, int(code), code.Name(), pki.NextCADir(r.o.Dir)))
	}
	return nil
}

// makeNewCA makes the new CA beside the old one (or keeps the one an interrupted run made)
// and writes the bundles of the later phases.
func (r *rotator) makeNewCA() error {
	next := pki.NextCADir(r.o.Dir)
	if r.newCA == nil {
		name := r.o.Name
		if name == "" {
			name = pki.RotatedCAName(r.oldCA.Subject.CommonName, time.Now())
		}
		opts := pki.CAOptions{Name: name, Days: r.o.Days, Passphrase: r.pass, KeyType: keyTypeOf(r.oldCA)}
		if r.pass == nil {
			if _, err := pki.OpenCA(r.o.Dir, nil); err != nil {
				return fmt.Errorf("open the old CA: %w", err)
			}
			opts.Unencrypted = true // as the old CA's key is
		}
		if _, err := pki.InitCA(next, opts); err != nil {
			return err
		}
		if err := r.loadNewCA(); err != nil {
			return err
		}
	}
	if err := r.readCRLs(); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"ca-old.pem": r.oldPEM, "crl-old.pem": r.oldCRL, "ca-new.pem": r.newPEM, "crl-new.pem": r.newCRL,
		"ca-both.pem": bundle(r.oldPEM, r.newPEM), "crl-both.pem": bundle(r.oldCRL, r.newCRL),
	} {
		if _, err := pki.WriteRotationFile(r.o.Dir, name, data); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.e.stdout, "  new CA %s in %s\n", caLine(r.newCA), next)
	return nil
}

func keyTypeOf(ca *x509.Certificate) pki.KeyType {
	switch ca.PublicKeyAlgorithm {
	case x509.Ed25519:
		return pki.KeyEd25519
	case x509.RSA:
		return pki.KeyRSA3072
	}
	return pki.KeyECDSAP256
}

// pushAll pushes a trust bundle to every member, one at a time.
func (r *rotator) pushAll(ctx context.Context, p pki.Phase, ca, crl []byte) error {
	push, err := r.trustPush(ca, crl)
	if err != nil {
		return err
	}
	for _, t := range r.members {
		if _, err := r.c.PushTrust(ctx, t.url, push); err != nil {
			return serverError(fmt.Errorf("push the %s bundle to %s: %w", p, t.name, err))
		}
		fmt.Fprintf(r.e.stdout, "  %s: %s port trust replaced\n", t.name, r.port)
	}
	return nil
}

// trustPush is the push of bundle ca with its CRLs, and the endorsements a member needs to
// add a CA it does not trust yet: the old CA endorses the new one and the new CA the old one
// (for a rollback after the old was withdrawn), each with its own key, which only this host
// holds. A member refuses to add a CA without one, so that an admin certificate alone
// cannot make it trust a CA.
func (r *rotator) trustPush(ca, crl []byte) (wire.TrustPush, error) {
	push := wire.TrustPush{Port: r.port, CA: string(ca), CRL: string(crl)}
	if r.newCA == nil {
		return push, nil
	}
	oldCA, err := pki.OpenCA(r.o.Dir, r.pass)
	if err != nil {
		return push, fmt.Errorf("open the old CA to endorse the new one: %w", err)
	}
	newCA, err := pki.OpenCA(pki.NextCADir(r.o.Dir), r.pass)
	if err != nil {
		return push, fmt.Errorf("open the new CA to endorse the old one: %w", err)
	}
	byOld, err := oldCA.Endorse(r.newCA)
	if err != nil {
		return push, err
	}
	byNew, err := newCA.Endorse(r.oldCA)
	if err != nil {
		return push, err
	}
	push.Endorsements = string(byOld) + string(byNew)
	return push, nil
}

// moveLeaves gives each member that still serves a certificate of the old CA one of the new
// CA: the member makes the key and CSR, the CA signs, the member installs it if it matches
// its pending key. Each member is checked with a handshake trusting the new CA alone before
// the next moves.
func (r *rotator) moveLeaves(ctx context.Context) error {
	ca, err := pki.OpenCA(pki.NextCADir(r.o.Dir), r.pass)
	if err != nil {
		return fmt.Errorf("open the new CA: %w", err)
	}
	for _, t := range r.members {
		if servesFrom(t, r.newCA) {
			fmt.Fprintf(r.e.stdout, "  %s: already serves a certificate of the new CA\n", t.name)
			continue
		}
		if err := r.moveLeaf(ctx, ca, t); err != nil {
			return err
		}
	}
	return nil
}

func (r *rotator) moveLeaf(ctx context.Context, ca *pki.CA, t target) error {
	is, err := renewMemberCert(ctx, r.c, ca, t.url, r.o.LeafDays)
	if err != nil {
		return fmt.Errorf("move %s to the new CA: %w", t.name, err)
	}
	if err := r.handshakeNewOnly(ctx, t); err != nil {
		return err
	}
	fmt.Fprintf(r.e.stdout, "  %s: serves %s (serial %s) from the new CA; a handshake trusting the new CA alone succeeds\n", t.name, pki.DNOf(is.Cert), is.Cert.SerialNumber.Text(16))
	return nil
}

// handshakeNewOnly connects to the member's client port trusting the new replication CA
// alone: it succeeds only when the member serves a certificate of the new CA.
func (r *rotator) handshakeNewOnly(ctx context.Context, t target) error {
	cfg := r.tlsCfg.Clone()
	cfg.RootCAs = x509.NewCertPool()
	cfg.RootCAs.AddCert(r.newCA)
	c, err := client.New(client.Config{Endpoints: []string{t.url}, TLS: cfg, Timeout: r.o.conn.Timeout})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.TLSOf(ctx, t.url); err != nil {
		return fmt.Errorf("handshake with %s trusting the new CA alone: %w", t.name, err)
	}
	return nil
}

// check verifies phase p against the live group.
func (r *rotator) check(ctx context.Context, p pki.Phase) error {
	if p == pki.PhaseNewCA {
		_, err := pki.OpenCA(pki.NextCADir(r.o.Dir), r.pass)
		return err
	}
	if err := r.waitHealthy(ctx); err != nil {
		return err
	}
	for _, t := range r.members {
		if err := r.checkMember(ctx, p, t); err != nil {
			return err
		}
	}
	return nil
}

func (r *rotator) checkMember(ctx context.Context, p pki.Phase, t target) error {
	oldT, newT := r.trusts(t, r.oldCA), r.trusts(t, r.newCA)
	switch {
	case p == pki.PhaseTrustBoth && !(oldT && newT):
		return fmt.Errorf("%s does not have both CAs in force (old: %t, new: %t); its log says why", t.name, oldT, newT)
	case p == pki.PhaseLeaves && !servesFrom(t, r.newCA):
		return fmt.Errorf("%s does not serve a certificate of the new CA", t.name)
	case p == pki.PhaseWithdraw && (oldT || !newT):
		return fmt.Errorf("%s still trusts the old CA, or not the new one (old: %t, new: %t)", t.name, oldT, newT)
	}
	if r.kind == pki.KindMember && (p == pki.PhaseLeaves || p == pki.PhaseWithdraw) {
		return errors.Join(r.handshakeNewOnly(ctx, t), r.probeMemberPort(ctx, t))
	}
	return nil
}

// probeMemberPort probes the member's member port trusting the new CA alone, as `mirrorkv
// probe` does, and requires the chain it serves there to verify. The probe sends no
// certificate, so the member refuses it after the handshake and logs that once (reason
// no-certificate): what is checked is the member's side of the handshake.
func (r *rotator) probeMemberPort(ctx context.Context, t target) error {
	addr := ""
	for _, m := range r.view.Members {
		if m.Name == t.name {
			addr = m.MemberAddr
		}
	}
	certs, err := pki.ParseCertificates([]byte(t.info.ChainPEM))
	if err != nil || addr == "" {
		return fmt.Errorf("probe the member port of %s: no address or certificate known", t.name)
	}
	opts := mtls.ProbeOptions{CAFile: r.rotationFile("ca-new.pem"), ServerName: sanOf(certs[0]), Wait: 100 * time.Millisecond}
	rep, err := mtls.Probe(ctx, addr, opts)
	if rep == nil || !rep.Verified {
		return fmt.Errorf("probe the member port of %s (%s) trusting the new CA alone: its chain does not verify: %w", t.name, addr, err)
	}
	return nil
}

// sanOf is a name the certificate covers, to verify it by: the member port identifies
// members by DN, so the address dialled need not be in the certificate.
func sanOf(c *x509.Certificate) string {
	switch {
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	}
	return ""
}

// waitHealthy waits until every member answers and has a role in sync, re-reading their
// trust material: a member that just changed its certificate reconnects within a moment.
func (r *rotator) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.survey(ctx)
		if err == nil {
			err = r.healthy()
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (r *rotator) healthy() error {
	if r.view.Primary == "" {
		return errors.New("the group has no primary")
	}
	for _, m := range r.view.Members {
		if m.Role == wire.RoleUnsync {
			return fmt.Errorf("member %s is %s (reason %d %s)", m.Name, m.Role, m.Reason.Code, m.Reason.Text)
		}
	}
	for _, t := range r.members {
		if t.err != nil {
			return fmt.Errorf("member %s does not answer: %w", t.name, t.err)
		}
	}
	return nil
}

func (r *rotator) printNext() {
	switch p := r.state.Next(); {
	case p == pki.PhaseNone:
		fmt.Fprintf(r.e.stdout, "next: mirrorkv ca rotate verify %s\n", r.caFlags())
	case r.kind == pki.KindClient && p == pki.PhaseWithdraw:
		r.printReissue()
	case r.kind == pki.KindMember && p == pki.PhaseLeaves:
		fmt.Fprintf(r.e.stdout, "clients must trust the new CA before the leaves move: point --cacert (MIRRORKV_CACERT) at %s\nnext: mirrorkv ca rotate apply %s\n", r.rotationFile("ca-both.pem"), r.caFlags())
	default:
		fmt.Fprintf(r.e.stdout, "next: mirrorkv ca rotate apply %s\n", r.caFlags())
	}
}

func (r *rotator) printReissue() {
	fmt.Fprintf(r.e.stdout, `every member trusts the old and the new client CA. Reissue each client certificate from the
new CA, and give it to its owner:
  mirrorkv ca issue --dir %s --client --access ACCESS --name NAME --out DIR
then withdraw the old client CA (this command needs an admin certificate of the new CA):
  mirrorkv ca rotate apply %s --cert NEW-ADMIN.crt --key NEW-ADMIN.key
`, pki.NextCADir(r.o.Dir), r.caFlags())
}
