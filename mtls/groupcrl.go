package mtls

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// CRLs reach a port from two sources: the CRL file (Config.CRLFile, reloaded on change) and
// the group, which holds the CRLs pushed with `mirrorkv ca revoke --push` in its replicated
// state (SetGroupCRLs). For each issuing CA the newest CRL of the two is in force: the one
// with the higher CRL number, the file's when both carry the same number. A pushed CRL is
// checked against this port's CA bundle with the same rule as the file
// (pki.CheckCRLSignature), and must not be older than the CRL in force for its CA
// (pki.CheckCRLNumber).

// enforce rebuilds the revocations in force from the file's CRLs and pushed. A pushed CRL
// that no CA of this snapshot's bundle signed (the bundle changed since) is left out. It runs
// on a snapshot before the swap.
func (m *material) enforce(pushed []*x509.RevocationList) {
	m.revoked, m.crlNext, m.numbers = map[string]bool{}, time.Time{}, map[string]*big.Int{}
	fileNumber := map[string]*big.Int{}
	for _, rl := range m.fileCRLs {
		id := pki.CRLIssuerID(rl)
		if n := pki.CRLNumber(rl); fileNumber[id] == nil || n.Cmp(fileNumber[id]) > 0 {
			fileNumber[id] = n
		}
	}
	newer := map[string]*x509.RevocationList{}
	for _, rl := range pushed {
		id := pki.CRLIssuerID(rl)
		if f := fileNumber[id]; f != nil && pki.CRLNumber(rl).Cmp(f) <= 0 {
			continue
		}
		if pki.CheckCRLSignature(rl, m.cas) != nil {
			continue
		}
		if cur := newer[id]; cur == nil || pki.CRLNumber(rl).Cmp(pki.CRLNumber(cur)) > 0 {
			newer[id] = rl
		}
	}
	for _, rl := range m.fileCRLs {
		if newer[pki.CRLIssuerID(rl)] == nil {
			m.addCRL(rl)
		}
	}
	for _, rl := range newer {
		m.addCRL(rl)
	}
}

// addCRL puts rl's revocations in force. A CRL past its next update is still used: the
// revocations it lists stay true, and refusing it would either re-admit them (dropping the
// CRL) or stop every restarting member of the group on the same day (refusing to start).
// Source.Health reports it, and Watch warns about it, until a fresh one is in place.
func (m *material) addCRL(rl *x509.RevocationList) {
	for _, e := range rl.RevokedCertificateEntries {
		m.revoked[revKey(rl.RawIssuer, e.SerialNumber)] = true
	}
	if next := rl.NextUpdate; !next.IsZero() && (m.crlNext.IsZero() || next.Before(m.crlNext)) {
		m.crlNext = next
	}
	id := pki.CRLIssuerID(rl)
	if n := pki.CRLNumber(rl); m.numbers[id] == nil || n.Cmp(m.numbers[id]) > 0 {
		m.numbers[id] = n
	}
}

// checkGroupCRL parses der and checks it against m: signed by a CA of this port's bundle
// (reason.CRLUnknownSigner otherwise) and not older than the CRL in force for that CA
// (reason.CRLOlder).
func (s *Source) checkGroupCRL(m *material, der []byte) (*x509.RevocationList, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, reason.Wrap(reason.CRLInvalid, fmt.Errorf("parse CRL: %w", err))
	}
	if err := pki.CheckCRLSignature(rl, m.cas); err != nil {
		return nil, reason.Wrap(reason.CRLUnknownSigner, fmt.Errorf("%s port: %w", s.cfg.Port, err))
	}
	if err := pki.CheckCRLNumber(rl, m.numbers[pki.CRLIssuerID(rl)]); err != nil {
		return nil, fmt.Errorf("%s port: %w", s.cfg.Port, err)
	}
	return rl, nil
}

// CheckCRL reports whether the CRL der (DER) would be put in force on this port: signed by
// a CA of its bundle (reason.CRLUnknownSigner otherwise) and not older than the CRL in
// force for that CA (reason.CRLOlder). The primary asks it before a pushed CRL is
// committed, so that a bad push is refused with its reason.
func (s *Source) CheckCRL(der []byte) error {
	_, err := s.checkGroupCRL(s.mat.Load(), der)
	return err
}

// SetGroupCRLs puts in force the CRLs (DER) the group holds for this port, each for its CA
// where it is newer than the CRL file's, and closes the live connections of every
// certificate they revoke. Each CRL is checked again here (CheckCRL): one that fails keeps
// the CRL in force for its CA, and is logged and returned. The node calls it at start and
// whenever the group's CRLs change.
func (s *Source) SetGroupCRLs(ders [][]byte) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.mat.Load()
	next := slices.Clone(s.groupCRLs)
	var errs []error
	for _, der := range ders {
		rl, err := s.checkGroupCRL(cur, der)
		if err != nil {
			code := reason.Of(err, reason.CRLInvalid)
			level := slog.LevelError
			if code == reason.CRLOlder {
				level = slog.LevelWarn // a newer CRL is in force already, from the file perhaps
			}
			s.log.Log(context.Background(), level, "CRL pushed to the group refused on this member; the CRL in force stays",
				"reason", int(code), "reason_name", code.Name(), "fix", code.Fix(), "err", err)
			errs = append(errs, err)
			continue
		}
		id := pki.CRLIssuerID(rl)
		next = slices.DeleteFunc(next, func(o *x509.RevocationList) bool { return pki.CRLIssuerID(o) == id })
		next = append(next, rl)
	}
	if slices.EqualFunc(next, s.groupCRLs, func(a, b *x509.RevocationList) bool { return string(a.Raw) == string(b.Raw) }) {
		return errors.Join(errs...)
	}
	prev := s.groupCRLs
	s.groupCRLs = next
	m, err := s.check(cur.files)
	if err != nil {
		s.groupCRLs = prev
		return errors.Join(append(errs, s.reloadFailed(err))...)
	}
	if m.isRevoked(m.leaf) {
		s.log.Error("this member's own certificate is revoked by a CRL pushed to the group; peers will refuse it: install a new one",
			"reason", int(reason.Revoked), "serial", m.leaf.SerialNumber.String())
	}
	s.install(m)
	for _, rl := range next {
		s.log.Info("CRL pushed to the group accepted", "issuer", rl.Issuer.String(), "number", pki.CRLNumber(rl).String(),
			"revoked", len(rl.RevokedCertificateEntries), "generation", m.gen)
	}
	s.recheckAll()
	s.noteExpiry()
	return errors.Join(errs...)
}
