package mtls

import (
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Warning levels before a CRL's next update or a certificate's expiry.
const (
	warnBefore   = 7 * 24 * time.Hour
	urgentBefore = 24 * time.Hour
	// warnEvery repeats a warning that still holds, so a daily log review sees it.
	warnEvery = 24 * time.Hour
)

// expiryLevel orders how close a deadline is: the log warns once per level reached.
type expiryLevel int

const (
	levelOK expiryLevel = iota
	levelWarn
	levelUrgent
	levelExpired
)

func levelOf(deadline, now time.Time) expiryLevel {
	switch left := deadline.Sub(now); {
	case deadline.IsZero() || left > warnBefore:
		return levelOK
	case left <= 0:
		return levelExpired
	case left <= urgentBefore:
		return levelUrgent
	}
	return levelWarn
}

// Health reports what an operator must act on in this side's material, most urgent first:
// a CRL past its next update (reason.CRLExpired: its revocations still apply, newer ones
// cannot be known), a CRL due within 7 days (reason.CRLExpiring), or this side's own
// certificate expiring within 7 days (reason.CertExpiring). It returns reason.OK and the
// zero time otherwise, or else the deadline concerned.
func (s *Source) Health() (reason.Code, time.Time) {
	m, now := s.mat.Load(), s.cfg.Now()
	switch levelOf(m.crlNext, now) {
	case levelExpired:
		return reason.CRLExpired, m.crlNext
	case levelWarn, levelUrgent:
		return reason.CRLExpiring, m.crlNext
	}
	if levelOf(m.leaf.NotAfter, now) != levelOK {
		return reason.CertExpiring, m.leaf.NotAfter
	}
	return reason.OK, time.Time{}
}

// CRLNextUpdate is when the CRLs in force are due to be replaced; zero without a CRL.
func (s *Source) CRLNextUpdate() time.Time { return s.mat.Load().crlNext }

// noteExpiry logs the CRL's state when it reaches a new level (7 days, 1 day, past), and
// again every day while it stays there. Watch calls it every minute, so an expiry is noticed
// although no file changed.
func (s *Source) noteExpiry() {
	m, now := s.mat.Load(), s.cfg.Now()
	level := levelOf(m.crlNext, now)
	s.logMu.Lock()
	changed := level != s.crlLevel || (level != levelOK && now.Sub(s.crlWarned) >= warnEvery)
	if changed {
		s.crlLevel, s.crlWarned = level, now
	}
	s.logMu.Unlock()
	if !changed || level == levelOK {
		return
	}
	attrs := []any{"crl_file", s.cfg.CRLFile, "next_update", m.crlNext.UTC().Format(time.RFC3339)}
	if level == levelExpired {
		s.log.Error("the CRL is past its next update: the revocations it lists are still enforced, but a certificate revoked since cannot be known; publish a fresh CRL (mirrorkv ca crl) and copy it to every member",
			append(attrs, "reason", int(reason.CRLExpired), "reason_name", reason.CRLExpired.Name())...)
		return
	}
	s.log.Warn("the CRL reaches its next update soon; publish a fresh one (mirrorkv ca crl) and copy it to every member",
		append(attrs, "left", m.crlNext.Sub(now).Round(time.Minute).String(), "reason", int(reason.CRLExpiring), "reason_name", reason.CRLExpiring.Name())...)
}
