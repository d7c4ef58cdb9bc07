package pki

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// IssueRequest describes a certificate to issue together with a new key.
type IssueRequest struct {
	Name    string   // subject CN, and the base name of the files WriteIssued writes
	DNS     []string // DNS SANs
	IPs     []net.IP // IP SANs
	Days    int      // DefaultLeafDays when zero; never beyond the CA's own expiry
	Kind    Kind     // RoleMember (serverAuth+clientAuth) or RoleClient (clientAuth)
	Access  Access   // for RoleClient; AccessReadWrite when empty
	Group   string   // for RoleMember: the group it joins; DefaultGroup when empty
	KeyType KeyType  // KeyECDSAP256 when empty
	Renew   bool     // allow a second valid certificate for the same subject
	// Profile, when set, makes a certificate for another product instead of a mirrorkv
	// member or client: its extensions and CN come from the profile, Kind, Access and
	// Group are unused.
	Profile *Profile
}

// SignOptions says what the CA grants a CSR; the CSR only contributes its subject, its
// DNS and IP SANs and its public key, never the extensions it asks for. A group or access
// URI in the CSR (a renewal carries the old certificate's) must match what SignOptions
// grant, or Sign refuses it (ErrGrantMismatch).
type SignOptions struct {
	Kind   Kind
	Access Access // for RoleClient; AccessReadWrite when empty
	Group  string // for RoleMember; DefaultGroup when empty
	Days   int
	Renew  bool
	// Profile, when set, decides the extensions instead of Kind, Access and Group.
	Profile *Profile
}

// Issued is a new certificate and, when the CA made the key, the key.
type Issued struct {
	Name    string
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer // nil when signed from a CSR
	KeyPEM  []byte        // nil when signed from a CSR
}

// Issue makes a key and a certificate for it.
func (ca *CA) Issue(req IssueRequest) (*Issued, error) {
	if err := CheckName(req.Name); err != nil {
		return nil, err
	}
	cn := req.Name
	if req.Profile != nil {
		cn = req.Profile.CommonName(req.Name)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("encode subject: %w", err)
	}
	key, err := GenerateKey(req.KeyType)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", req.Name, err)
	}
	tmpl := &x509.Certificate{RawSubject: subject, DNSNames: req.DNS, IPAddresses: req.IPs}
	opts := SignOptions{Kind: req.Kind, Access: req.Access, Group: req.Group, Days: req.Days, Renew: req.Renew, Profile: req.Profile}
	cert, err := ca.certify(tmpl, key.Public(), opts)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", req.Name, err)
	}
	keyPEM, err := MarshalPrivateKey(key, nil)
	if err != nil {
		return nil, err
	}
	return &Issued{Name: req.Name, Cert: cert, CertPEM: pemCert(cert), Key: key, KeyPEM: keyPEM}, nil
}

// Sign certifies the key of a CSR (PEM or DER) made by 'mirrorkv cert request' or openssl.
func (ca *CA) Sign(csrPEM []byte, opts SignOptions) (*Issued, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	name := csr.Subject.CommonName
	if name == "" {
		return nil, errors.New("sign request: its subject has no CN; make it with 'mirrorkv cert request --name NAME'")
	}
	if p := opts.Profile; p != nil && !strings.HasPrefix(name, p.CNPrefix) {
		return nil, fmt.Errorf("sign request for %s: profile %s names certificates %s<name>; make the request with CN %s", name, p.Name, p.CNPrefix, p.CommonName(name))
	}
	if err := checkKeyStrength(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("sign request for %s: %w", name, err)
	}
	if err := CheckGrant(csr, opts); err != nil {
		return nil, fmt.Errorf("sign request for %s: %w", name, err)
	}
	tmpl := &x509.Certificate{RawSubject: csr.RawSubject, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses}
	cert, err := ca.certify(tmpl, csr.PublicKey, opts)
	if err != nil {
		return nil, fmt.Errorf("sign request for %s: %w", name, err)
	}
	return &Issued{Name: name, Cert: cert, CertPEM: pemCert(cert)}, nil
}

func checkKeyStrength(pub crypto.PublicKey) error {
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return fmt.Errorf("RSA %d: %w", k.N.BitLen(), ErrWeakKey)
	}
	return nil
}

// certify fills tmpl's extensions for the role, signs it and records it in the index.
func (ca *CA) certify(tmpl *x509.Certificate, pub crypto.PublicKey, opts SignOptions) (*x509.Certificate, error) {
	now := ca.clock.now()
	if !now.Before(ca.cert.NotAfter) {
		return nil, fmt.Errorf("the CA expired on %s; make a new one and rotate (docs/certificates.md)", ca.cert.NotAfter.Format(time.DateOnly))
	}
	unlock, err := ca.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := ca.loadIndex()
	if err != nil {
		return nil, err
	}
	subject := dnFromRaw(tmpl.RawSubject)
	if strings.EqualFold(subject, DNOf(ca.cert)) {
		return nil, fmt.Errorf("subject %s: %w", subject, ErrSubjectIsCA)
	}
	if err := checkDedicated(idx, opts.Profile, now); err != nil {
		return nil, err
	}
	if old := idx.validFor(subject, now); old != nil && !opts.Renew {
		return nil, fmt.Errorf("%s holds serial %s until %s: %w", subject, old.Serial, old.NotAfter.Format(time.DateOnly), ErrSubjectExists)
	}
	if err := ca.fillLeaf(tmpl, pub, opts, now); err != nil {
		return nil, err
	}
	cert, err := createCertificate(ca.clock.rand(), tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	idx.Certs = append(idx.Certs, record{
		Serial: serialHex(cert.SerialNumber), Subject: subject, Kind: kindLabel(opts),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
	})
	if err := ca.saveIndex(idx); err != nil {
		return nil, err
	}
	return cert, nil
}

func (ca *CA) fillLeaf(tmpl *x509.Certificate, pub crypto.PublicKey, opts SignOptions, now time.Time) error {
	serial, err := randomSerial(ca.clock.rand())
	if err != nil {
		return err
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(pub); err != nil {
		return err
	}
	days := opts.Days
	if days <= 0 {
		days = DefaultLeafDays
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.AddDate(0, 0, days)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter // a leaf must not outlive the CA that vouches for it
	}
	tmpl.BasicConstraintsValid = true
	if opts.Profile != nil {
		_, rsaKey := pub.(*rsa.PublicKey)
		tmpl.KeyUsage, tmpl.ExtKeyUsage = opts.Profile.keyUsage(rsaKey), opts.Profile.extKeyUsage()
		return nil
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	uri, err := grantURI(opts)
	if err != nil {
		return err
	}
	tmpl.URIs = []*url.URL{uri}
	if opts.Kind == KindClient {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		return nil
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // for TLS 1.2 peers doing RSA key transport
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return nil
}

// grantURI is the one URI SAN a leaf carries: a client's access URI, which always names its
// access, or a member's group URI.
func grantURI(opts SignOptions) (*url.URL, error) {
	if opts.Kind == KindClient {
		if opts.Group != "" {
			return nil, fmt.Errorf("group %q: a client certificate carries no group; leave the group out for --client", opts.Group)
		}
		access, err := ParseAccess(string(opts.Access))
		if err != nil {
			return nil, err
		}
		return access.URI(), nil
	}
	if opts.Access != "" {
		return nil, fmt.Errorf("access %q: a member certificate carries no access level; add --client for a client certificate", opts.Access)
	}
	group := opts.Group
	if group == "" {
		group = DefaultGroup
	}
	if err := CheckName(group); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	return GroupURI(group), nil
}

func kindLabel(opts SignOptions) string {
	if opts.Profile != nil {
		return profileKindPrefix + opts.Profile.Name
	}
	if opts.Kind != KindClient {
		return "member"
	}
	if opts.Access == "" {
		return "client:" + string(AccessReadWrite)
	}
	return "client:" + string(opts.Access)
}

// dnFromRaw renders a DER subject the way DNOf does.
func dnFromRaw(raw []byte) string {
	return DNOf(&x509.Certificate{RawSubject: raw})
}

// CheckName checks a certificate name given with --name: 1 to 64 letters, digits, '.', '_'
// or '-', starting with a letter or digit, because it also names the files.
func CheckName(name string) error {
	ok := name != "" && len(name) <= 64 && isAlnum(name[0])
	for i := 0; ok && i < len(name); i++ {
		ok = isAlnum(name[i]) || name[i] == '.' || name[i] == '_' || name[i] == '-'
	}
	if !ok {
		return fmt.Errorf("name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// WriteIssued writes is to outDir/NAME.crt (0644) and, when it has a key, outDir/NAME.key
// (0600), both or neither; existing files are replaced whole.
func WriteIssued(outDir string, is *Issued) (certPath, keyPath string, err error) {
	certPath = filepath.Join(outDir, is.Name+".crt")
	files := []fileSpec{{certPath, is.CertPEM, modePublic}}
	if is.KeyPEM != nil {
		keyPath = filepath.Join(outDir, is.Name+".key")
		files = append(files, fileSpec{keyPath, is.KeyPEM, modeSecret})
	}
	if err := writeFilesAtomic(files); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}
