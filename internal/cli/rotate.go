package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// rotateOptions are the flags of `ca rotate`.
type rotateOptions struct {
	conn           connectOptions
	Dir            string // --dir: the CA being replaced
	PassphraseFile string // --passphrase-file: of the old CA, and of the new one
	Member, Client bool   // --member, --client: which CA
	All            bool   // apply --all
	Name           string // apply --name: the new CA's CN
	Days           int    // apply --days: the new CA's lifetime
	LeafDays       int    // apply --leaf-days: the members' new certificates
}

func newCARotateCmd(e *env) *cobra.Command {
	o := &rotateOptions{}
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "replace the replication CA (--member) or the client CA (--client) on a live group",
		Long: `Replace a CA on a live group in phases, each verified against every member before the
next starts: new CA -> every member trusts old and new -> every member serves a certificate
of the new CA (--member; each member makes its own key) -> the old CA is withdrawn.
The state lives in the CA directory: an interrupted apply resumes with the next apply, and
abort rolls back while no member serves a certificate of the new CA. Pushes go over the
admin API to each member directly: give an admin client certificate. docs/rotation.md.`,
	}
	cmd.RunE = unknownSubcommand
	addConnectFlags(cmd, &o.conn)
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.Dir, "dir", "", "directory of the CA being replaced (`ca init --dir`)")
	pf.StringVar(&o.PassphraseFile, "passphrase-file", "", "passphrase of the CA key (the new CA's key gets the same)")
	pf.BoolVar(&o.Member, "member", false, "rotate the replication CA: members' trust and certificates")
	pf.BoolVar(&o.Client, "client", false, "rotate the client CA: members' trust of client certificates")
	apply := &cobra.Command{
		Use:   "apply",
		Short: "apply and verify the next phase (all of them with --all)",
		Args:  args(cobra.NoArgs),
		RunE:  func(*cobra.Command, []string) error { return runRotate(e, o, (*rotator).apply) },
	}
	apply.Flags().BoolVar(&o.All, "all", false, "apply every remaining phase, each verified before the next")
	apply.Flags().StringVar(&o.Name, "name", "", "subject CN of the new CA (default: the old CN with today's date)")
	apply.Flags().IntVar(&o.Days, "days", pki.DefaultCADays, "lifetime of the new CA in days")
	apply.Flags().IntVar(&o.LeafDays, "leaf-days", pki.DefaultLeafDays, "lifetime of the members' new certificates in days")
	cmd.AddCommand(
		&cobra.Command{Use: "plan", Short: "show the group's trust and the phases, what each changes and checks", Args: args(cobra.NoArgs),
			RunE: func(*cobra.Command, []string) error { return runRotate(e, o, (*rotator).plan) }},
		apply,
		&cobra.Command{Use: "verify", Short: "check the finished rotation on the live group and retire the old CA", Args: args(cobra.NoArgs),
			RunE: func(*cobra.Command, []string) error { return runRotate(e, o, (*rotator).verify) }},
		&cobra.Command{Use: "abort", Short: "roll back to the last phase every member can live with", Args: args(cobra.NoArgs),
			RunE: func(*cobra.Command, []string) error { return runRotate(e, o, (*rotator).abort) }},
	)
	return cmd
}

// rotator is one `ca rotate` run: the CA directory, the state and the group.
type rotator struct {
	e     *env
	o     *rotateOptions
	kind  pki.Kind
	port  wire.TLSPort
	pass  []byte
	state *pki.Rotation // nil: no rotation in progress

	oldCA          *x509.Certificate
	oldPEM, oldCRL []byte
	newCA          *x509.Certificate // nil until made
	newPEM, newCRL []byte
	c              *client.Client // trusts the members' old and new CA
	tlsCfg         *tls.Config
	view           wire.Status
	members        []target
}

// target is one member as the rotation sees it.
type target struct {
	name, url string
	info      wire.TLSInfo
	err       error // unreachable, or its answer failed
}

func runRotate(e *env, o *rotateOptions, step func(*rotator) error) error {
	r, err := openRotator(e, o)
	if err != nil {
		return err
	}
	defer r.c.Close()
	return step(r)
}

func openRotator(e *env, o *rotateOptions) (*rotator, error) {
	if o.Member == o.Client {
		return nil, usagef("ca rotate: give --member (the replication CA) or --client (the client CA)")
	}
	if o.Dir == "" {
		return nil, usagef("ca rotate: --dir is required: the directory of the CA being replaced")
	}
	r := &rotator{e: e, o: o, kind: pki.KindMember, port: wire.TLSPortMember}
	if o.Client {
		r.kind, r.port = pki.KindClient, wire.TLSPortClient
	}
	var err error
	if r.pass, err = readPassphraseFile(o.PassphraseFile); err != nil {
		return nil, err
	}
	if r.oldPEM, r.oldCA, err = readCACert(filepath.Join(o.Dir, pki.CACertFile)); err != nil {
		return nil, err
	}
	r.state, err = pki.LoadRotation(o.Dir, r.kind)
	switch {
	case errors.Is(err, pki.ErrNoRotation):
		r.state = nil
	case err != nil:
		return nil, err
	}
	if err := r.loadNewCA(); err != nil {
		return nil, err
	}
	return r, r.connect()
}

func readCACert(path string) ([]byte, *x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA certificate: %w; --dir must be the CA directory given to `ca init`", err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA certificate %s: %w", path, err)
	}
	return data, certs[0], nil
}

// loadNewCA reads the new CA's certificate, if it was made.
func (r *rotator) loadNewCA() error {
	path := filepath.Join(pki.NextCADir(r.o.Dir), pki.CACertFile)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	var err error
	r.newPEM, r.newCA, err = readCACert(path)
	return err
}

// connect builds the client: for a replication CA rotation it trusts the new CA too, since
// members move to it during the rotation. The connection flags are checked as every
// command that talks to a group checks them (a missing one is a usage mistake).
func (r *rotator) connect() error {
	c, err := r.o.conn.client()
	if err != nil {
		return err
	}
	c.Close()
	r.tlsCfg, err = client.LoadTLS(r.o.conn.CACert, r.o.conn.Cert, r.o.conn.Key, client.WithCRL(r.o.conn.CRL))
	if err != nil {
		return err
	}
	if r.kind == pki.KindMember {
		r.tlsCfg.RootCAs.AddCert(r.oldCA)
		if r.newCA != nil {
			r.tlsCfg.RootCAs.AddCert(r.newCA)
		}
	}
	r.c, err = client.New(client.Config{Endpoints: c.Endpoints(), TLS: r.tlsCfg, Timeout: r.o.conn.Timeout})
	return err
}

// survey reads the group's members from the status and asks each for its trust material.
func (r *rotator) survey(ctx context.Context) error {
	st, err := r.c.Status(ctx)
	if err != nil {
		return serverError(fmt.Errorf("read the group's status: %w", err))
	}
	r.view, r.members = st, nil
	for _, m := range st.Members {
		t := target{name: m.Name, url: m.ClientURL}
		if t.url == "" {
			t.err = errors.New("no client URL recorded for it; re-add it with `mirrorkv member add --client-url`")
		} else {
			t.info, t.err = r.c.TLSOf(ctx, t.url)
		}
		r.members = append(r.members, t)
	}
	return nil
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// trusts reports whether ca is in the bundle the member has in force on the rotated port.
func (r *rotator) trusts(t target, ca *x509.Certificate) bool {
	if ca == nil {
		return false
	}
	bundle := t.info.MemberCAs
	if r.kind == pki.KindClient {
		bundle = t.info.ClientCAs
	}
	fp := fingerprint(ca)
	return slices.ContainsFunc(bundle, func(c wire.CertInfo) bool { return c.SHA256 == fp })
}

// servesFrom reports whether the member's leaf verifies against ca alone.
func servesFrom(t target, ca *x509.Certificate) bool {
	if ca == nil {
		return false
	}
	certs, err := pki.ParseCertificates([]byte(t.info.ChainPEM))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: time.Now()})
	return err == nil
}

func (r *rotator) caFlags() string {
	s := "--member"
	if r.kind == pki.KindClient {
		s = "--client"
	}
	s += " --dir " + r.o.Dir
	if r.o.PassphraseFile != "" {
		s += " --passphrase-file " + r.o.PassphraseFile
	}
	return s
}

func caLine(c *x509.Certificate) string {
	return fmt.Sprintf("%s (sha256 %s…, until %s)", pki.DNOf(c), fingerprint(c)[:16], caDay(c.NotAfter))
}

func (r *rotator) kindName() string {
	if r.kind == pki.KindClient {
		return "client CA"
	}
	return "replication CA"
}

// blocked is the refusal of a phase that would cut a member off.
func blocked(p pki.Phase, member, url, what, fix string) error {
	code := reason.RotationBlocked
	return reason.Wrap(code, fmt.Errorf("phase %s: member %s (%s) %s (reason %d %s)\nfix: %s", p, member, url, what, int(code), code.Name(), fix))
}

// withTimeout bounds one phase's network work.
func (r *rotator) withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.e.ctx, 2*time.Minute)
}

// bundle concatenates PEM files.
func bundle(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.Write(bytes.TrimSpace(p))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (r *rotator) readCRLs() error {
	var err error
	if r.oldCRL, err = os.ReadFile(filepath.Join(r.o.Dir, pki.CRLFile)); err != nil {
		return fmt.Errorf("read the old CA's CRL: %w; make one with `mirrorkv ca crl --dir %s`", err, r.o.Dir)
	}
	if r.newCA == nil {
		return nil
	}
	if r.newCRL, err = os.ReadFile(filepath.Join(pki.NextCADir(r.o.Dir), pki.CRLFile)); err != nil {
		return fmt.Errorf("read the new CA's CRL: %w", err)
	}
	return nil
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }
