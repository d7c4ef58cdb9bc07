// Package localgroup runs a mirrorkv group on this host: it makes a replication CA and a
// client CA, issues member and admin certificates, starts each member as a real `mirrorkv
// serve` process on a loopback address, and forms the group through the API the way an
// operator would (bootstrap the first member, authorise and add the others). The demo, the
// end-to-end tests and the benchmark comparison use it.
package localgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Options describe the group to create. Zero values give three failover members on
// 127.0.0.1 under policy dn.
type Options struct {
	Binary    string   // the mirrorkv executable
	Dir       string   // where CAs, certificates, data and logs go
	Failover  int      // failover members (voters), default 3
	Async     int      // async members (non-voters)
	Hosts     []string // loopback address per member (cycled); default 127.0.0.1
	Policy    string   // ca or dn; default dn
	ServeArgs []string // extra `serve` flags for every member
	Progress  io.Writer
	// Timeout bounds forming the group; default 60s.
	Timeout time.Duration
	// BeforeStart, when set, runs once the members are planned and their certificates
	// issued, before any starts: a test sets AdvertiseAddr and starts its proxies there.
	BeforeStart func(*Group) error
	// BeforeGrow, when set, runs for each member Grow adds, once it is planned and its
	// certificate issued, before it starts: a test puts the new member behind its proxy there.
	BeforeGrow func(*Member) error
}

// Group is a running local group.
type Group struct {
	opts    Options
	PKI     *PKI
	Members []*Member
	admin   *client.Client
}

// Create makes the certificates, starts the members and forms the group. On error it stops
// whatever it started.
func Create(ctx context.Context, opts Options) (_ *Group, err error) {
	if opts.Binary == "" || opts.Dir == "" {
		return nil, errors.New("create local group: binary and dir are required")
	}
	if opts.Failover == 0 {
		opts.Failover = 3
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	g := &Group{opts: opts}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if err := g.plan(); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Progress, "making a replication CA, a client CA and %d member certificates in %s\n", len(g.Members), opts.Dir)
	if g.PKI, err = makePKI(filepath.Join(opts.Dir, "pki"), g.Members); err != nil {
		return nil, err
	}
	if g.admin, err = g.newAdminClient(); err != nil {
		return nil, err
	}
	if opts.BeforeStart != nil {
		if err := opts.BeforeStart(g); err != nil {
			return nil, err
		}
	}
	if err := g.form(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Group) plan() error {
	for i := range g.opts.Failover + g.opts.Async {
		m, err := g.planMember(i >= g.opts.Failover)
		if err != nil {
			return err
		}
		g.Members = append(g.Members, m)
	}
	return nil
}

// planMember picks the name, host, ports and directories of the next member.
func (g *Group) planMember(async bool) (*Member, error) {
	i := len(g.Members)
	host := "127.0.0.1"
	if len(g.opts.Hosts) > 0 {
		host = g.opts.Hosts[i%len(g.opts.Hosts)]
	}
	memberAddr, err := freePort(host)
	if err != nil {
		return nil, err
	}
	clientAddr, err := freePort(host)
	if err != nil {
		return nil, err
	}
	name := "m" + strconv.Itoa(i+1)
	dir := filepath.Join(g.opts.Dir, name)
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	return &Member{
		Name: name, Host: host, MemberAddr: memberAddr, ClientAddr: clientAddr,
		ClientURL: "https://" + clientAddr, Dir: filepath.Join(dir, "data"),
		LogFile: filepath.Join(dir, "member.log"), Async: async,
	}, nil
}

// Grow adds one new member to the running group, as an operator would: issue its
// certificate, start it with --join, authorise and add it. It returns once the member is
// added; it may still be catching up (see WaitInSync).
func (g *Group) Grow(ctx context.Context, async bool) (*Member, error) {
	m, err := g.planMember(async)
	if err != nil {
		return nil, err
	}
	if err := g.PKI.IssueMember(m); err != nil {
		return nil, err
	}
	if g.opts.BeforeGrow != nil {
		if err := g.opts.BeforeGrow(m); err != nil {
			return nil, err
		}
	}
	g.Members = append(g.Members, m)
	if err := g.startNew(ctx, m, "--join", g.Members[0].Advertise(), "--join-pin", g.Members[0].DN); err != nil {
		return nil, err
	}
	if err := g.AddMember(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// form starts the first member with --bootstrap, then each other member with --join, and
// authorises and adds it on the primary, as `mirrorkv member add` does.
func (g *Group) form(ctx context.Context) error {
	first := g.Members[0]
	fmt.Fprintf(g.opts.Progress, "starting %s (bootstrap) on %s\n", first.Name, first.ClientAddr)
	if err := g.startNew(ctx, first, "--bootstrap"); err != nil {
		return err
	}
	if err := g.waitRole(ctx, first, wire.RolePrimary); err != nil {
		return err
	}
	for _, m := range g.Members[1:] {
		fmt.Fprintf(g.opts.Progress, "starting %s and adding it as %s\n", m.Name, map[bool]string{false: "a failover member", true: "an async member"}[m.Async])
		if err := g.startNew(ctx, m, "--join", first.Advertise(), "--join-pin", first.DN); err != nil {
			return err
		}
		if err := g.AddMember(ctx, m); err != nil {
			return err
		}
	}
	return g.WaitInSync(ctx)
}

// startNew starts a member the group does not know yet and waits until it serves. freePort's
// ports were free a moment ago, but another process (a test running alongside) may have
// taken one since: the member then exits (address already in use) and is started again
// on a new port, which nobody has been told yet. A member port behind a test's proxy
// (AdvertiseAddr) cannot move; that start fails as before.
func (g *Group) startNew(ctx context.Context, m *Member, extra ...string) error {
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey, client.WithCRL(g.PKI.MemberCRL))
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if err := g.Start(m, extra...); err != nil {
			return err
		}
		taken, err := m.waitServing(ctx, tlsCfg)
		if err == nil {
			return nil
		}
		if taken == "" || attempt == 3 || (taken == "member" && m.AdvertiseAddr != "") {
			return g.memberFailed(m, err)
		}
		addr, ferr := freePort(m.Host)
		if ferr != nil {
			return ferr
		}
		fmt.Fprintf(g.opts.Progress, "%s: its %s port was taken by another process; starting it on %s\n", m.Name, taken, addr)
		if taken == "client" {
			m.ClientAddr, m.ClientURL = addr, "https://"+addr
			if g.admin, err = g.newAdminClient(); err != nil {
				return err
			}
		} else {
			m.MemberAddr = addr
		}
	}
}

// AddMember authorises m's DN and adds it to the group through the admin API.
func (g *Group) AddMember(ctx context.Context, m *Member) error {
	err := g.admin.AddMember(ctx, wire.Member{Name: m.Name, MemberAddr: m.Advertise(), ClientURL: m.ClientURL, DN: m.DN, Async: m.Async})
	if err != nil {
		return g.memberFailed(m, fmt.Errorf("add member %s: %w", m.Name, err))
	}
	return nil
}

// Start starts m's process with the group's common flags and extra.
func (g *Group) Start(m *Member, extra ...string) error {
	args := []string{"serve",
		"--name", m.Name, "--dir", m.Dir,
		"--member-listen", m.MemberAddr, "--member-advertise", m.Advertise(),
		"--client-listen", m.ClientAddr,
		"--member-cert", m.CertFile, "--member-key", m.KeyFile,
		"--member-ca", g.PKI.MemberCA, "--member-crl", g.PKI.MemberCRL,
		"--client-ca", g.PKI.ClientCA, "--client-crl", g.PKI.ClientCRL,
	}
	if g.opts.Policy != "" {
		args = append(args, "--policy", g.opts.Policy)
	}
	args = append(args, g.opts.ServeArgs...)
	args = append(args, m.ExtraArgs...)
	args = append(args, extra...)
	return m.start(g.opts.Binary, args)
}

// Restart starts a stopped or killed member again with the same data directory.
func (g *Group) Restart(m *Member) error { return g.Start(m) }

func (g *Group) memberFailed(m *Member, err error) error {
	log := m.Log()
	if len(log) > 4000 {
		log = "..." + log[len(log)-4000:]
	}
	return fmt.Errorf("%w\n--- log of %s (%s) ---\n%s", err, m.Name, m.LogFile, log)
}

// waitRole waits until m itself reports role.
func (g *Group) waitRole(ctx context.Context, m *Member, role wire.Role) error {
	if err := waitTCP(ctx, m.ClientAddr); err != nil {
		return g.memberFailed(m, err)
	}
	var last error
	for {
		st, err := g.admin.StatusOf(ctx, m.ClientURL)
		if err == nil && st.Role == role {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s is %s (%s)", m.Name, st.Role, st.Reason.Text)
		}
		last = err
		if !m.Running() {
			return g.memberFailed(m, fmt.Errorf("member %s exited: %v", m.Name, m.ExitErr()))
		}
		select {
		case <-ctx.Done():
			return g.memberFailed(m, fmt.Errorf("wait for %s to be %s: %w (last: %v)", m.Name, role, ctx.Err(), last))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitInSync waits until the primary reports every member of the group in sync.
func (g *Group) WaitInSync(ctx context.Context) error {
	var last string
	for {
		st, err := g.admin.Status(ctx)
		if err == nil {
			if st.SyncNodes == len(g.Members) && len(st.Members) == len(g.Members) {
				return nil
			}
			last = fmt.Sprintf("%d of %d members in sync", st.SyncNodes, len(g.Members))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the group to be in sync: %w (last: %s)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Endpoints are the client URLs of every member.
func (g *Group) Endpoints() []string {
	out := make([]string, len(g.Members))
	for i, m := range g.Members {
		out[i] = m.ClientURL
	}
	return out
}

// Env is the environment that points the CLI at the group as its admin.
func (g *Group) Env() []string {
	return []string{
		"MIRRORKV_ENDPOINTS=" + strings.Join(g.Endpoints(), ","),
		"MIRRORKV_CACERT=" + g.PKI.MemberCA,
		"MIRRORKV_CERT=" + g.PKI.AdminCert,
		"MIRRORKV_KEY=" + g.PKI.AdminKey,
		"MIRRORKV_CRL=" + g.PKI.MemberCRL,
	}
}

// Admin is a client of the group with the admin certificate.
func (g *Group) Admin() *client.Client { return g.admin }

func (g *Group) newAdminClient() (*client.Client, error) { return g.AdminOf(g.Members...) }

// AdminOf is an admin client that talks to the given members only, in order.
func (g *Group) AdminOf(members ...*Member) (*client.Client, error) {
	tlsCfg, err := client.LoadTLS(g.PKI.MemberCA, g.PKI.AdminCert, g.PKI.AdminKey, client.WithCRL(g.PKI.MemberCRL))
	if err != nil {
		return nil, err
	}
	endpoints := make([]string, len(members))
	for i, m := range members {
		endpoints[i] = m.ClientURL
	}
	return client.New(client.Config{Endpoints: endpoints, TLS: tlsCfg, Timeout: 10 * time.Second})
}

// Close stops every member: SIGTERM, then SIGKILL after a grace period.
func (g *Group) Close() error {
	var errs []error
	for _, m := range g.Members {
		if err := m.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
