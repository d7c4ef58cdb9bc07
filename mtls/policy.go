package mtls

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// dnOf renders the subject of c as an RFC 4514 string, the form authorised DNs are stored
// in and compared as.
func dnOf(c *x509.Certificate) string { return pki.DNOf(c) }

func pemCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// direction says which end of a connection is checking its peer.
type direction int

const (
	accepting direction = iota // we accepted; the peer dialled
	dialling                   // we dialled; the peer accepted
)

// The usage, validity and group rules are pki's (pki.CheckUsage and the others), shared with
// `cert lint`, so that what lint says and what the ports do cannot drift apart.

// verifyChain verifies certs (leaf first) against the snapshot's roots. The validity
// window is checked first so that the reason is precise.
func verifyChain(m *material, certs []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, refuse(reason.NoCertificate, "the peer presented no certificate")
	}
	leaf := certs[0]
	if err := pki.CheckValidity(leaf, now); err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: m.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, refuse(Explain(err).Code, "verify certificate %q issued by %q: %w", dnOf(leaf), leaf.Issuer, err)
	}
	return chains[0], nil
}

// checkRevoked refuses a chain any of whose certificates the snapshot's CRLs list.
func checkRevoked(m *material, chain []*x509.Certificate) error {
	for _, c := range chain {
		if m.isRevoked(c) {
			return refuse(reason.Revoked, "certificate %q (serial %s) is revoked", dnOf(c), c.SerialNumber)
		}
	}
	return nil
}

// memberSet is the authorised members for policy dn: an immutable value swapped whole.
type memberSet struct {
	byAddr map[string]string
	dns    map[string]bool
}

func newMemberSet(members map[string]string) *memberSet {
	s := &memberSet{byAddr: make(map[string]string, len(members)), dns: make(map[string]bool, len(members))}
	for addr, dn := range members {
		s.byAddr[addr] = dn
		s.dns[dn] = true
	}
	return s
}

// checkDN denies by default: with an empty set, no peer is authorised.
func checkDN(ms *memberSet, leaf *x509.Certificate, dir direction, addr string) error {
	dn := dnOf(leaf)
	if dir == dialling {
		if want, ok := ms.byAddr[addr]; ok {
			if dn != want {
				return refuse(reason.WrongMember, "%s presented %q, but the member at that address is %q", addr, dn, want)
			}
			return nil
		}
	}
	if !ms.dns[dn] {
		return refuse(reason.DNNotAuthorised, "subject %q is not an authorised member", dn)
	}
	return nil
}

// authorise is the whole policy for one peer chain, on either end and on every re-check.
// verified is the chain Go already verified (server side), or nil to verify here.
func (s *Source) authorise(m *material, certs, verified []*x509.Certificate, dir direction, addr string) error {
	now := s.cfg.Now()
	chain := verified
	if chain == nil {
		var err error
		if chain, err = verifyChain(m, certs, now); err != nil {
			return err
		}
	}
	leaf := chain[0]
	var err error
	switch {
	case s.cfg.Port == PortMember:
		if err = pki.CheckUsage(leaf, pki.UseMember); err == nil {
			err = pki.CheckGroup(leaf, s.cfg.Group)
		}
	case dir == accepting:
		err = pki.CheckUsage(leaf, pki.UseClientAuth)
	default:
		err = pki.CheckUsage(leaf, pki.UseServerAuth)
	}
	if err != nil {
		return err
	}
	if err := checkRevoked(m, chain); err != nil {
		return err
	}
	if s.cfg.Port != PortMember {
		return nil
	}
	ms := s.members.Load()
	// A join address is where a new member learns whom to trust: under either policy, the
	// member there must be the one pinned, until the membership names it.
	if _, known := ms.byAddr[addr]; dir == dialling && !known && slices.Contains(s.cfg.JoinAddrs, addr) {
		return checkPins(s.cfg.JoinPins, leaf, addr)
	}
	if s.cfg.Policy == PolicyDN {
		return checkDN(ms, leaf, dir, addr)
	}
	return nil
}

// checkOwnLeaf refuses a certificate of our own that peers would refuse, at start and on
// every reload, so that a mistake shows here and not as failed handshakes elsewhere.
func checkOwnLeaf(cfg Config, m *material, now time.Time) error {
	wrap := func(err error) error {
		if err == nil {
			return nil
		}
		return &CredentialError{Reason: reason.Of(err, reason.BadCredentials), File: cfg.CertFile, Err: err}
	}
	if err := pki.CheckValidity(m.leaf, now); err != nil {
		return wrap(err)
	}
	if cfg.Port != PortMember {
		return wrap(pki.CheckKeyUsage(m.leaf))
	}
	if _, err := verifyChain(m, m.chain, now); err != nil {
		return wrap(fmt.Errorf("this member's own certificate does not chain to %s: %w", cfg.CAFile, err))
	}
	if err := pki.CheckUsage(m.leaf, pki.UseMember); err != nil {
		return wrap(err)
	}
	return wrap(pki.CheckGroup(m.leaf, cfg.Group))
}
