package localgroup

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/mirrorkv/mirrorkv/pki"
)

// PKI is the group's credentials: a replication CA for members, a separate client CA, and
// an admin client certificate.
type PKI struct {
	Dir       string
	MemberCA  string // replication CA certificate; clients verify members against it too
	MemberCRL string
	ClientCA  string
	ClientCRL string
	AdminCert string
	AdminKey  string

	memberCA *pki.CA
	clientCA *pki.CA
}

// makePKI creates both CAs in dir, a member certificate for each member (CN = its name, an
// IP SAN for its host) and an admin client certificate.
func makePKI(dir string, members []*Member) (*PKI, error) {
	p := &PKI{Dir: dir}
	var err error
	// The demo's and the tests' CAs are throwaway, live in a temp directory and are never
	// used for anything else: their keys are explicitly unencrypted.
	if p.memberCA, err = pki.InitCA(filepath.Join(dir, "member-ca"), pki.CAOptions{Name: "mirrorkv replication CA", Unencrypted: true}); err != nil {
		return nil, fmt.Errorf("create replication CA: %w", err)
	}
	if p.clientCA, err = pki.InitCA(filepath.Join(dir, "client-ca"), pki.CAOptions{Name: "mirrorkv client CA", Unencrypted: true}); err != nil {
		return nil, fmt.Errorf("create client CA: %w", err)
	}
	if err := mkdirs(filepath.Join(dir, "members"), filepath.Join(dir, "clients")); err != nil {
		return nil, err
	}
	p.MemberCA = filepath.Join(dir, "member-ca", "ca.crt")
	p.MemberCRL = filepath.Join(dir, "member-ca", "crl.pem")
	p.ClientCA = filepath.Join(dir, "client-ca", "ca.crt")
	p.ClientCRL = filepath.Join(dir, "client-ca", "crl.pem")
	for _, m := range members {
		if err := p.IssueMember(m); err != nil {
			return nil, err
		}
	}
	admin, err := p.clientCA.Issue(pki.IssueRequest{Name: "admin", Kind: pki.KindClient, Access: pki.AccessAdmin})
	if err != nil {
		return nil, fmt.Errorf("issue admin certificate: %w", err)
	}
	if p.AdminCert, p.AdminKey, err = pki.WriteIssued(filepath.Join(dir, "clients"), admin); err != nil {
		return nil, err
	}
	return p, nil
}

// IssueMember issues (or renews) m's member certificate and records its files and DN in m.
func (p *PKI) IssueMember(m *Member) error {
	is, err := p.memberCA.Issue(pki.IssueRequest{Name: m.Name, IPs: []net.IP{net.ParseIP(m.Host)}, DNS: []string{"localhost"}, Kind: pki.KindMember, Renew: true})
	if err != nil {
		return fmt.Errorf("issue member certificate for %s: %w", m.Name, err)
	}
	if m.CertFile, m.KeyFile, err = pki.WriteIssued(filepath.Join(p.Dir, "members"), is); err != nil {
		return err
	}
	m.DN = pki.DNOf(is.Cert)
	return nil
}

// IssueClient issues a client certificate with the given access into the clients directory.
func (p *PKI) IssueClient(name string, access pki.Access) (certFile, keyFile string, err error) {
	is, err := p.clientCA.Issue(pki.IssueRequest{Name: name, Kind: pki.KindClient, Access: access, Renew: true})
	if err != nil {
		return "", "", fmt.Errorf("issue client certificate %s: %w", name, err)
	}
	return pki.WriteIssued(filepath.Join(p.Dir, "clients"), is)
}

// ReplicationCA is the replication CA itself, for tests that revoke or rotate credentials.
func (p *PKI) ReplicationCA() *pki.CA { return p.memberCA }

// ClientAuthority is the client CA itself, for tests that revoke client certificates.
func (p *PKI) ClientAuthority() *pki.CA { return p.clientCA }
