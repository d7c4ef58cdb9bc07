package mtls

import (
	"crypto/x509"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// Material names the piece of a port's trust material that an Expiry concerns.
type Material string

// Materials that expire.
const (
	MaterialLeaf Material = "leaf" // this side's own certificate
	MaterialCA   Material = "ca"   // a CA certificate of the port's bundle
	MaterialCRL  Material = "crl"  // the CRL in force, due at its next update
)

// Expiry is a deadline in a Source's material that has reached a warning level: 30, 7 or
// 1 day before it, or past it.
type Expiry struct {
	Port     Port
	Material Material
	Subject  string    // the certificate's subject DN; for a CRL, its issuer's
	File     string    // the file that holds it
	At       time.Time // NotAfter, or the CRL's next update
	// Reason is reason.CertExpiring or reason.CertExpired (the leaf: refused at start and on
	// reload, it can still run out while in force), reason.CAExpiring, reason.CAExpired,
	// reason.CRLExpiring or reason.CRLExpired.
	Reason reason.Code
}

const day = 24 * time.Hour

// warnBefore are the warning levels, furthest first. A level counts only for material
// that lives at least twice as long as the level: a CRL made for 30 days (the default of
// `mirrorkv ca crl`) warns at 7 days and 1 day, not from the moment it is made, and a
// certificate made for a week is not "due within 7 days" all its life.
var warnBefore = [...]time.Duration{30 * day, 7 * day, day}

// warnEvery repeats a warning that still holds, so that a daily log review sees it.
const warnEvery = day

// expiryLevel orders how close a deadline is: the log warns once per level reached.
type expiryLevel int

const (
	levelOK expiryLevel = iota
	level30Days
	level7Days
	level1Day
	levelExpired
)

// levelOf is the level reached at now by material valid from from until at.
func levelOf(from, at, now time.Time) expiryLevel {
	left := at.Sub(now)
	switch {
	case at.IsZero():
		return levelOK
	case left <= 0:
		return levelExpired
	}
	level := levelOK
	for i, before := range warnBefore {
		if left <= before && at.Sub(from) >= 2*before {
			level = expiryLevel(i + 1)
		}
	}
	return level
}

// deadline is one expiring piece of material, with the start of its life.
type deadline struct {
	Expiry
	from time.Time
}

// deadlines lists every expiring piece of m: the leaf, each CA of the bundle, the CRL.
func (s *Source) deadlines(m *material) []deadline {
	port := s.cfg.Port
	ds := []deadline{{Expiry{Port: port, Material: MaterialLeaf, Subject: dnOf(m.leaf), File: s.cfg.CertFile, At: m.leaf.NotAfter}, m.leaf.NotBefore}}
	for _, ca := range m.cas {
		ds = append(ds, deadline{Expiry{Port: port, Material: MaterialCA, Subject: dnOf(ca), File: s.cfg.CAFile, At: ca.NotAfter}, ca.NotBefore})
	}
	if rl := m.crlDue; rl != nil {
		issuer := pki.DNOf(&x509.Certificate{RawSubject: rl.RawIssuer})
		ds = append(ds, deadline{Expiry{Port: port, Material: MaterialCRL, Subject: issuer, File: s.cfg.CRLFile, At: m.crlNext}, rl.ThisUpdate})
	}
	return ds
}

// expiryReason is the reason code of material at level.
func expiryReason(what Material, level expiryLevel) reason.Code {
	expired := level == levelExpired
	switch {
	case what == MaterialCRL && expired:
		return reason.CRLExpired
	case what == MaterialCRL:
		return reason.CRLExpiring
	case what == MaterialCA && expired:
		return reason.CAExpired
	case what == MaterialCA:
		return reason.CAExpiring
	case expired:
		return reason.CertExpired
	}
	return reason.CertExpiring
}

// Expiries lists what in this port's material is within 30, 7 or 1 day of its end (as
// warnBefore counts them) or past it, most urgent (earliest) first; nil when nothing is.
// The status shows them per member, and the log warns about each once per level and day.
func (s *Source) Expiries() []Expiry {
	var out []Expiry
	now := s.cfg.Now()
	for _, d := range s.deadlines(s.mat.Load()) {
		if level := levelOf(d.from, d.At, now); level != levelOK {
			d.Reason = expiryReason(d.Material, level)
			out = append(out, d.Expiry)
		}
	}
	slices.SortStableFunc(out, func(a, b Expiry) int { return a.At.Compare(b.At) })
	return out
}

// Health reports the most urgent of Expiries: its reason and its deadline. A CRL past its
// next update (reason.CRLExpired) leaves the member running: its revocations still apply,
// newer ones cannot be known. It returns reason.OK and the zero time when nothing is due.
func (s *Source) Health() (reason.Code, time.Time) {
	if es := s.Expiries(); len(es) > 0 {
		return es[0].Reason, es[0].At
	}
	return reason.OK, time.Time{}
}

// CRLNextUpdate is when the CRLs in force are due to be replaced; zero without a CRL.
func (s *Source) CRLNextUpdate() time.Time { return s.mat.Load().crlNext }

// caNotAfter maps the subject DN of every CA of this port's bundle to its expiry.
func (s *Source) caNotAfter() map[string]time.Time {
	cas := s.mat.Load().cas
	out := make(map[string]time.Time, len(cas))
	for _, ca := range cas {
		dn := dnOf(ca)
		if t, seen := out[dn]; !seen || ca.NotAfter.Before(t) {
			out[dn] = ca.NotAfter // two CAs of one name (a re-keyed CA): the earlier end counts
		}
	}
	return out
}

// expiryNote is what noteExpiry last logged about one deadline.
type expiryNote struct {
	level  expiryLevel
	logged time.Time
}

// noteExpiry logs each deadline of the material in force when it reaches a new level (30
// days, 7 days, 1 day, past), and again every day while it stays there: one rule for the
// leaf, the CAs and the CRL. Watch calls it every minute, so an expiry is noticed although
// no file changed.
func (s *Source) noteExpiry() {
	now := s.cfg.Now()
	var due []Expiry
	s.logMu.Lock()
	seen := make(map[string]expiryNote, len(s.expiryNotes))
	for _, d := range s.deadlines(s.mat.Load()) {
		key := string(d.Material) + "|" + d.Subject + "|" + d.At.String()
		level, last := levelOf(d.from, d.At, now), s.expiryNotes[key]
		if level != last.level || (level != levelOK && now.Sub(last.logged) >= warnEvery) {
			last = expiryNote{level, now}
			if level != levelOK {
				d.Reason = expiryReason(d.Material, level)
				due = append(due, d.Expiry)
			}
		}
		seen[key] = last
	}
	s.expiryNotes = seen // material replaced since: forget its deadlines
	s.logMu.Unlock()
	for _, e := range due {
		s.logExpiry(e, now)
	}
}

func (s *Source) logExpiry(e Expiry, now time.Time) {
	attrs := []any{"material", string(e.Material), "subject", e.Subject, "file", e.File,
		"at", e.At.UTC().Format(time.RFC3339), "reason", int(e.Reason), "reason_name", e.Reason.Name()}
	if e.At.After(now) {
		attrs = append(attrs, "left", e.At.Sub(now).Round(time.Minute).String())
	}
	msg := expiryMessage(e.Reason)
	if !e.At.After(now) {
		s.log.Error(msg, attrs...)
		return
	}
	s.log.Warn(msg, attrs...)
}

// expiryMessage says what runs out and what to do, in the log's words.
func expiryMessage(c reason.Code) string {
	switch c {
	case reason.CRLExpired:
		return "the CRL is past its next update: the revocations it lists are still enforced, but a certificate revoked since cannot be known; publish a fresh CRL to the group with mirrorkv ca crl --push (or copy crl.pem to every member)"
	case reason.CRLExpiring:
		return "the CRL reaches its next update soon; publish a fresh one to the group with mirrorkv ca crl --push (or copy crl.pem to every member)"
	case reason.CAExpired:
		return "a CA of the trust bundle has expired: no certificate it signed is accepted any more; make a new CA, issue new certificates from it and put it in the bundle (docs/tls.md, Rotating the CA)"
	case reason.CAExpiring:
		return "a CA of the trust bundle expires soon, and every certificate it signed with it; make a new CA and rotate to it before then (docs/tls.md, Rotating the CA)"
	case reason.CertExpired:
		return "this member's certificate has expired and peers refuse it; renew it (mirrorkv cert renew --cert FILE, then mirrorkv ca sign --renew on the CA host) and move the new key and certificate into place: no restart needed"
	}
	return "this member's certificate expires soon; renew it (mirrorkv cert renew --cert FILE, then mirrorkv ca sign --renew on the CA host) and move the new key and certificate into place: no restart needed"
}
