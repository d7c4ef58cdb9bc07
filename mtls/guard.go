package mtls

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// guardPublicCA refuses a replication or client CA that the system trust store also vouches
// for: any certificate that CA signs (for a web server, a laptop, anyone) would pass as a
// member, or as a client with whatever access its URIs claim.
func guardPublicCA(cfg Config, cas []*x509.Certificate, now time.Time) error {
	if cfg.AllowPublicCA {
		return nil
	}
	sys, err := cfg.SystemRoots()
	if err != nil || sys == nil {
		return nil // no system store on this host: nothing in it can collide
	}
	for _, ca := range cas {
		_, err := ca.Verify(x509.VerifyOptions{Roots: sys, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			continue
		}
		if cfg.Port == PortMember {
			return credErr(reason.PublicCA, cfg.CAFile,
				"replication CA %q is trusted by the system trust store: every certificate it signs, not only member certificates, would be authorised for replication; use a dedicated CA (`mirrorkv ca init`), or set the explicit override (--allow-public-ca) if this CA signs nothing but member certificates", dnOf(ca))
		}
		return credErr(reason.PublicCA, cfg.CAFile,
			"CA %q is trusted by the system trust store: every certificate it signs for client authentication would be taken for a mirrorkv client; use a dedicated client CA (`mirrorkv ca init`), or set the explicit override (--allow-public-ca) if this CA signs nothing but mirrorkv client certificates", dnOf(ca))
	}
	return nil
}

// CheckSharedCA refuses the same CA in the member bundle and the client bundle, whatever the
// member policy: members and clients are distinct trust domains, and a certificate of one
// must never be taken for the other (a member certificate for an admin client, or a client
// certificate for a member).
func CheckSharedCA(memberCAFile, clientCAFile string) error {
	member, err := loadBundle(memberCAFile)
	if err != nil {
		return err
	}
	client, err := loadBundle(clientCAFile)
	if err != nil {
		return err
	}
	for _, m := range member {
		for _, c := range client {
			if m.Equal(c) || (string(m.RawSubject) == string(c.RawSubject) && string(m.RawSubjectPublicKeyInfo) == string(c.RawSubjectPublicKeyInfo)) {
				return &CredentialError{Reason: reason.SharedCA, File: clientCAFile,
					Err: fmt.Errorf("CA %q is in both the member CA bundle %s and the client CA bundle: a member certificate could pass as a client and a client certificate as a member", dnOf(m), memberCAFile)}
			}
		}
	}
	return nil
}

func loadBundle(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, credErr(reason.BadCredentials, path, "read: %w", err)
	}
	cas, _, err := parseCAs(path, data)
	return cas, err
}
