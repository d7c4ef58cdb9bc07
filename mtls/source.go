package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Source holds the trust material of one port and hands out TLS configurations, listeners
// and connections that always use the current snapshot.
type Source struct {
	cfg     Config
	log     *slog.Logger
	mat     atomic.Pointer[material]
	members atomic.Pointer[memberSet]
	conns   *tracker
	listen  *tls.Config // GetConfigForClient only: hands out the current snapshot's config

	reloadMu   sync.Mutex // one reload at a time
	gen        uint64
	lastFailed [32]byte // the files a reload last refused, so Watch does not retry them
	// groupCRLs are the CRLs pushed to the group that this port accepted (groupcrl.go);
	// every snapshot puts them in force where they are newer than the file's.
	groupCRLs []*x509.RevocationList

	logMu       sync.Mutex
	logged      map[string]time.Time  // host|port|reason|... -> last logged (logDue)
	expiryNotes map[string]expiryNote // per deadline: what noteExpiry last logged
}

// NewSource reads and checks every credential file of cfg. It fails closed: an unreadable,
// mismatched, expired or otherwise unusable file stops it with one line that names the file
// and says what to do.
func NewSource(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure %s TLS: %w", cfg.Port, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		cfg:    cfg.withDefaults(),
		log:    log.With("port", cfg.Port.String()),
		conns:  newTracker(),
		logged: map[string]time.Time{},
	}
	s.members.Store(newMemberSet(cfg.Members))
	s.listen = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return s.mat.Load().server, nil
	}}
	f, err := readFiles(s.cfg)
	if err != nil {
		return nil, err
	}
	m, err := s.check(f)
	if err != nil {
		return nil, err
	}
	if m.isRevoked(m.leaf) {
		return nil, credErr(reason.Revoked, s.cfg.CertFile, "this certificate (serial %s) is listed in %s", m.leaf.SerialNumber, s.cfg.CRLFile)
	}
	s.install(m)
	s.cfg.Metrics.watchExpiry(s.cfg.Port.String(), s.LeafNotAfter)
	s.cfg.Metrics.watchCAs(s.cfg.Port.String(), s.caNotAfter)
	s.cfg.Metrics.watchCRL(s.cfg.Port.String(), s.CRLNextUpdate)
	s.noteExpiry()
	return s, nil
}

// check parses and checks a whole snapshot; nothing is swapped here.
func (s *Source) check(f *files) (*material, error) {
	now := s.cfg.Now()
	m, err := parseMaterial(s.cfg, f, now)
	if err != nil {
		return nil, err
	}
	if len(s.groupCRLs) > 0 {
		m.enforce(s.groupCRLs)
	}
	if err := guardPublicCA(s.cfg, m.cas, now); err != nil {
		return nil, err
	}
	m.server = s.serverConfig(m)
	m.sessions = tls.NewLRUClientSessionCache(256)
	return m, nil
}

func (s *Source) install(m *material) {
	s.gen++
	m.gen = s.gen
	s.mat.Store(m)
}

// Reload re-reads every file and swaps in the new material once all of it checks out;
// otherwise the old material stays in force and the refusal is logged and counted. Live
// connections that fail the new material's policy are closed.
func (s *Source) Reload() error {
	f, err := readFiles(s.cfg)
	if err != nil {
		return s.reloadFailed(err)
	}
	return s.reloadFiles(f)
}

func (s *Source) reloadFiles(f *files) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	m, err := s.check(f)
	if err != nil {
		s.lastFailed = f.sum
		return s.reloadFailed(err)
	}
	if m.isRevoked(m.leaf) {
		// Refusing the CRL would keep the old one, and with it weaker checks on every peer.
		s.log.Error("this member's own certificate is revoked; peers will refuse it: install a new one",
			"reason", int(reason.Revoked), "serial", m.leaf.SerialNumber.String())
	}
	s.install(m)
	s.log.Info("TLS material reloaded", "generation", m.gen, "leaf_not_after", m.leaf.NotAfter)
	s.recheckAll()
	s.noteExpiry()
	return nil
}

func (s *Source) reloadFailed(err error) error {
	code := reason.BadCredentials
	if ce, ok := errors.AsType[*CredentialError](err); ok {
		code = ce.Reason
	}
	s.cfg.Metrics.reloadError(s.cfg.Port.String(), code)
	s.log.Error("TLS reload refused; the previous certificate, CA bundle and CRL stay in force",
		"reason", int(code), "reason_name", code.Name(), "err", err)
	return fmt.Errorf("reload %s TLS material: %w", s.cfg.Port, err)
}

// Watch polls the files every interval (for example 2 s) and reloads when their content
// changes, until ctx is done. Replace files by renaming a complete new file over the old
// one, so that a poll never reads half a file.
func (s *Source) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	lastErr, lastCheck := "", time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastCheck) >= recheckEvery {
			// Certificates also expire with no file changing: cut those peers off too.
			lastCheck = time.Now()
			s.recheckAll()
			s.noteExpiry()
		}
		f, err := readFiles(s.cfg)
		if err != nil {
			if err.Error() != lastErr {
				lastErr = err.Error()
				_ = s.reloadFailed(err) // counted and logged there; polling goes on
			}
			continue
		}
		lastErr = ""
		if f.sum == s.mat.Load().sum || f.sum == s.lastFailedSum() {
			continue
		}
		_ = s.reloadFiles(f) // a refusal is counted and logged in reloadFiles
	}
}

func (s *Source) lastFailedSum() [32]byte {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.lastFailed
}

// SetMembers replaces the authorised members for policy dn (address -> canonical DN) and
// closes live connections of peers that are no longer authorised.
func (s *Source) SetMembers(members map[string]string) {
	s.members.Store(newMemberSet(maps.Clone(members)))
	s.recheckAll()
}

// LeafNotAfter is when this side's current certificate expires.
func (s *Source) LeafNotAfter() time.Time { return s.mat.Load().leaf.NotAfter }

// recheckEvery is how often Watch re-checks live connections when nothing changed.
const recheckEvery = time.Minute

// logEvery bounds how often the same refusal of the same host is logged: raft redials a
// refused peer many times a second. The error text is part of what is "the same", so that a
// second certificate refused from one host (another DN, another cause) is logged too.
// Metrics still count every one.
const logEvery = 30 * time.Second

// refused logs and counts one refused peer.
func (s *Source) refused(port, peer string, err error, msg string) {
	code := codeOf(err)
	s.cfg.Metrics.refusal(port, code)
	host := hostOf(peer)
	// The peer's port changes with every redial; keep it out of the key.
	key := fmt.Sprintf("%s|%d|%s", port, code, strings.ReplaceAll(fmt.Sprint(err), peer, host))
	if !s.logDue(host, key) {
		return
	}
	s.log.Warn(msg, "peer", peer, "reason", int(code), "reason_name", code.Name(), "err", err)
}

// logDue reports whether a line about host under key is due: the first one is, and then
// one every logEvery. Every line about peers that a listener refuses, drops or sheds goes
// through it, so that a host redialling in a loop, or a scan, cannot flood the log.
func (s *Source) logDue(host, key string) bool {
	key = host + "|" + key
	now := time.Now()
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if last, seen := s.logged[key]; seen && now.Sub(last) < logEvery {
		return false
	}
	if len(s.logged) >= 4096 {
		clear(s.logged) // many distinct hosts: a scan; forget rather than grow
	}
	s.logged[key] = now
	return true
}

// hostOf is the host part of a remote address: the port changes with every redial.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
