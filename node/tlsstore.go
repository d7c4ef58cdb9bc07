package node

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// tlsDir is the directory under --dir that holds the TLS material pushed to this member
// over the admin API (`mirrorkv ca rotate`). A pushed file is a regular file there and
// takes precedence over the file its flag names, also after a restart; where nothing was
// pushed, the name is a symbolic link to the flag's file, so that the TLS sources always
// read DIR/tls and a push is picked up by a reload like any changed file.
const tlsDir = "tls"

// Files of tlsDir.
const (
	fileMemberCA   = "member-ca.pem"
	fileMemberCRL  = "member-crl.pem"
	fileClientCA   = "client-ca.pem"
	fileClientCRL  = "client-crl.pem"
	fileCert       = "member.crt"
	fileKey        = "member.key"
	filePendingKey = "pending.key" // made for a CSR, until its certificate arrives
)

// pushable is one credential setting that a push may override.
type pushable struct {
	path *string
	file string
	flag string
}

func (c *Config) pushables() []pushable {
	return []pushable{
		{&c.MemberTLS.CAFile, fileMemberCA, "--member-ca"},
		{&c.MemberTLS.CRLFile, fileMemberCRL, "--member-crl"},
		{&c.ClientTLS.CAFile, fileClientCA, "--client-ca"},
		{&c.ClientTLS.CRLFile, fileClientCRL, "--client-crl"},
		{&c.MemberTLS.CertFile, fileCert, "--member-cert"},
		{&c.MemberTLS.KeyFile, fileKey, "--member-key"},
	}
}

// usePushedTLS points cfg's credential files into DIR/tls: at a pushed file where there is
// one (logged, since it overrides a flag), at a link to the flag's file elsewhere.
func usePushedTLS(cfg Config, log *slog.Logger) (Config, error) {
	dir := filepath.Join(cfg.Dir, tlsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cfg, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, p := range cfg.pushables() {
		if *p.path == "" {
			continue // a port run without a CRL
		}
		path := filepath.Join(dir, p.file)
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
			log.Info("using TLS material pushed to this member instead of the flag's file; remove it to go back to the flag's file",
				"file", path, "flag", p.flag, "flag_file", *p.path)
			*p.path = path
			continue
		}
		target, err := filepath.Abs(*p.path)
		if err != nil {
			return cfg, fmt.Errorf("%s %s: %w", p.flag, *p.path, err)
		}
		if _, err := os.Stat(target); err != nil {
			continue // the TLS source refuses it, naming the flag's file rather than a link
		}
		if err := linkAtomic(target, path); err != nil {
			return cfg, err
		}
		*p.path = path
	}
	return cfg, nil
}

// flagFile makes a credential error name the files the operator gave rather than their
// links in dir (DIR/tls), and says so when the file at fault was pushed to this member.
func flagFile(err error, dir string) error {
	msg := err.Error()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		link := filepath.Join(dir, e.Name())
		if target, rerr := os.Readlink(link); rerr == nil {
			msg = strings.ReplaceAll(msg, link, target)
		}
	}
	if ce, ok := errors.AsType[*mtls.CredentialError](err); ok && ce.File != "" {
		if target, rerr := os.Readlink(ce.File); rerr == nil {
			ce.File = target
		} else if fi, lerr := os.Lstat(ce.File); lerr == nil && fi.Mode().IsRegular() && filepath.Dir(ce.File) == dir {
			msg += " (a file pushed to this member by `mirrorkv ca rotate`, in force instead of the flag's; remove it to go back to the flag's file)"
		}
	}
	return &renamedError{msg: msg, err: err}
}

// renamedError is err with another message, for errors.Is and errors.As as before.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// linkAtomic makes path a symbolic link to target, replacing what is there in one rename.
func linkAtomic(target, path string) error {
	tmp := path + ".link"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s to %s: %w", path, target, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s to %s: %w", path, target, err)
	}
	return nil
}

func (n *Node) tlsPath(file string) string { return filepath.Join(n.cfg.Dir, tlsDir, file) }

// TLSInfo is the trust material this member has in force, for GET /v1/tls.
func (n *Node) TLSInfo() wire.TLSInfo {
	chain := n.memberSrc.Chain()
	info := wire.TLSInfo{
		Member: n.cfg.Name, DN: pki.DNOf(chain[0]), Chain: certInfos(chain), ChainPEM: string(pemOf(chain)),
		MemberCAs: certInfos(n.memberSrc.CAs()), ClientCAs: certInfos(n.clientSrc.CAs()), Pushed: []string{},
	}
	_, err := os.Stat(n.tlsPath(filePendingKey))
	info.PendingKey = err == nil
	for _, p := range n.cfg.pushables() {
		if fi, err := os.Lstat(n.tlsPath(p.file)); err == nil && fi.Mode().IsRegular() {
			info.Pushed = append(info.Pushed, p.file)
		}
	}
	return info
}

func certInfos(certs []*x509.Certificate) []wire.CertInfo {
	out := make([]wire.CertInfo, 0, len(certs))
	for _, c := range certs {
		sum := sha256.Sum256(c.Raw)
		out = append(out, wire.CertInfo{Subject: pki.DNOf(c), Issuer: pki.DNOf(&x509.Certificate{RawSubject: c.RawIssuer}),
			Serial: c.SerialNumber.Text(16), SHA256: hex.EncodeToString(sum[:]), NotAfter: c.NotAfter, IsCA: c.IsCA})
	}
	return out
}

func pemOf(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// SetTrust makes ca the CA bundle of port and crl its CRLs. The new files are written
// beside their targets and checked as the port would load them, with this member's own
// certificate: a bundle that no longer holds the CA of the certificate this member serves,
// or a CRL no CA of the bundle signed, is refused here and nothing changes.
func (n *Node) SetTrust(port wire.TLSPort, ca, crl, endorsements []byte) error {
	n.trustMu.Lock()
	defer n.trustMu.Unlock()
	caFile, crlFile, src := fileMemberCA, fileMemberCRL, n.memberSrc
	cfg := n.cfg.memberTLS(nil)
	if port == wire.TLSPortClient {
		caFile, crlFile, src = fileClientCA, fileClientCRL, n.clientSrc
		cfg = n.cfg.clientTLS(nil)
	}
	if err := checkAdded(ca, endorsements, src.CAs()); err != nil {
		return reason.Wrap(reason.CANotEndorsed, fmt.Errorf("check the pushed %s port trust: %w", port, err))
	}
	staged := []stagedFile{{target: n.tlsPath(caFile), data: ca, mode: 0o600}}
	switch {
	case cfg.CRLFile != "" && len(crl) == 0:
		return reason.Wrap(reason.BadTLSPush, fmt.Errorf("the %s port checks a CRL: push the CRL of every CA in the bundle with it", port))
	case cfg.CRLFile != "":
		staged = append(staged, stagedFile{target: n.tlsPath(crlFile), data: crl, mode: 0o600})
	}
	if err := stage(staged); err != nil {
		return err
	}
	defer unstage(staged)
	cfg.CAFile = staged[0].tmp
	if len(staged) > 1 {
		cfg.CRLFile = staged[1].tmp
	}
	if _, err := mtls.NewSource(cfg, nil); err != nil {
		return reason.Wrap(reason.TrustRefused, fmt.Errorf("check the pushed %s port trust: %w", port, err))
	}
	memberCA, clientCA := n.cfg.MemberTLS.CAFile, staged[0].tmp
	if port == wire.TLSPortMember {
		memberCA, clientCA = staged[0].tmp, n.cfg.ClientTLS.CAFile
	}
	if err := mtls.CheckSharedCA(memberCA, clientCA); err != nil {
		return reason.Wrap(reason.TrustRefused, fmt.Errorf("check the pushed %s port trust: %w", port, err))
	}
	if err := commit(staged); err != nil {
		return err
	}
	n.log.Info("trust pushed over the admin API installed", "port", port, "file", staged[0].target)
	return src.Reload()
}

// checkAdded requires an endorsement by a CA in force (inForce) for every CA of the pushed
// bundle that is not in force already: an admin certificate may reorder, keep or withdraw the
// CAs a member trusts, but only a holder of a trusted CA's key can add one.
func checkAdded(bundle, endorsements []byte, inForce []*x509.Certificate) error {
	pushed, err := pki.ParseCertificates(bundle)
	if err != nil {
		return err
	}
	var proofs []*x509.Certificate
	if len(endorsements) > 0 {
		if proofs, err = pki.ParseCertificates(endorsements); err != nil {
			return fmt.Errorf("endorsements: %w", err)
		}
	}
	for _, c := range pushed {
		if slices.ContainsFunc(inForce, func(f *x509.Certificate) bool { return f.Equal(c) }) {
			continue
		}
		if err := pki.CheckEndorsed(c, proofs, inForce, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// NewKeyRequest makes a key of the type this member's key has, keeps it as the pending key
// (replacing any older one) and returns a CSR with the subject and SANs of the certificate
// this member serves, so that a certificate for it keeps the member's authorisation. The
// key never leaves the member.
func (n *Node) NewKeyRequest() ([]byte, error) {
	n.trustMu.Lock()
	defer n.trustMu.Unlock()
	leaf := n.memberSrc.Chain()[0]
	key, err := pki.GenerateKey(keyTypeOf(leaf.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("make a new member key: %w", err)
	}
	tmpl := &x509.CertificateRequest{RawSubject: leaf.RawSubject, DNSNames: leaf.DNSNames, IPAddresses: leaf.IPAddresses, URIs: leaf.URIs}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("make a certificate request: %w", err)
	}
	keyPEM, err := pki.MarshalPrivateKey(key, nil)
	if err != nil {
		return nil, err
	}
	staged := []stagedFile{{target: n.tlsPath(filePendingKey), data: keyPEM, mode: 0o600}}
	if err := stage(staged); err != nil {
		return nil, err
	}
	defer unstage(staged)
	if err := commit(staged); err != nil {
		return nil, err
	}
	n.log.Info("new member key made for a certificate request; it waits for its certificate", "file", staged[0].target)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func keyTypeOf(pub crypto.PublicKey) pki.KeyType {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return pki.KeyEd25519
	case *rsa.PublicKey:
		if k.N.BitLen() > 3072 {
			return pki.KeyRSA4096
		}
		return pki.KeyRSA3072
	case *ecdsa.PublicKey:
	}
	return pki.KeyECDSAP256
}

// InstallCert installs cert with the pending key. It refuses a certificate for another key,
// one whose subject or SANs differ from the certificate served now (the member's DN is what
// the group authorises), and one the member port would not load (not chaining to the
// bundle in force, another group, expired).
func (n *Node) InstallCert(cert []byte) error {
	n.trustMu.Lock()
	defer n.trustMu.Unlock()
	keyPEM, err := os.ReadFile(n.tlsPath(filePendingKey))
	if errors.Is(err, fs.ErrNotExist) {
		return reason.Wrap(reason.NoPendingKey, errors.New("this member holds no pending key: ask it for a CSR first"))
	}
	if err != nil {
		return fmt.Errorf("read the pending key: %w", err)
	}
	if err := n.matchPending(cert, keyPEM); err != nil {
		return err
	}
	staged := []stagedFile{{target: n.tlsPath(fileKey), data: keyPEM, mode: 0o600}, {target: n.tlsPath(fileCert), data: cert, mode: 0o600}}
	if err := stage(staged); err != nil {
		return err
	}
	defer unstage(staged)
	cfg := n.cfg.memberTLS(nil)
	cfg.KeyFile, cfg.CertFile = staged[0].tmp, staged[1].tmp
	if _, err := mtls.NewSource(cfg, nil); err != nil {
		return reason.Wrap(reason.TrustRefused, fmt.Errorf("check the pushed certificate: %w", err))
	}
	if err := commit(staged); err != nil {
		return err
	}
	os.Remove(n.tlsPath(filePendingKey))
	n.log.Info("certificate pushed over the admin API installed with the pending key", "file", staged[1].target)
	return errors.Join(n.memberSrc.Reload(), n.clientSrc.Reload())
}

// matchPending checks that cert's leaf is for the pending key and names this member as
// the certificate it serves now does.
func (n *Node) matchPending(cert, keyPEM []byte) error {
	certs, err := pki.ParseCertificates(cert)
	if err != nil {
		return reason.Wrap(reason.BadTLSPush, err)
	}
	key, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return fmt.Errorf("read the pending key: %w", err)
	}
	leaf, cur := certs[0], n.memberSrc.Chain()[0]
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return reason.Wrap(reason.PendingKeyMismatch, fmt.Errorf("certificate %s (serial %s) is not for the key this member made last", pki.DNOf(leaf), leaf.SerialNumber.Text(16)))
	}
	if !bytes.Equal(leaf.RawSubject, cur.RawSubject) || !sameSANs(leaf, cur) {
		return reason.Wrap(reason.TrustRefused, fmt.Errorf("certificate for %s %v differs from the served %s %v in subject or SANs; the group authorises this member by them", pki.DNOf(leaf), sans(leaf), pki.DNOf(cur), sans(cur)))
	}
	return nil
}

func sans(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	slices.Sort(out)
	return out
}

func sameSANs(a, b *x509.Certificate) bool { return slices.Equal(sans(a), sans(b)) }

// stagedFile is one file of a change, written and fsynced beside its target before any of
// them is renamed into place.
type stagedFile struct {
	target string
	data   []byte
	mode   fs.FileMode
	tmp    string
}

func stage(files []stagedFile) error {
	for i := range files {
		f := &files[i]
		t, err := os.CreateTemp(filepath.Dir(f.target), "."+filepath.Base(f.target)+".tmp*")
		if err != nil {
			unstage(files)
			return fmt.Errorf("write %s: %w", f.target, err)
		}
		f.tmp = t.Name()
		_, werr := t.Write(f.data)
		if err := errors.Join(t.Chmod(f.mode), werr, t.Sync(), t.Close()); err != nil {
			unstage(files)
			return fmt.Errorf("write %s: %w", f.target, err)
		}
	}
	return nil
}

// unstage removes temp files that were not renamed into place.
func unstage(files []stagedFile) {
	for _, f := range files {
		if f.tmp != "" {
			os.Remove(f.tmp)
		}
	}
}

// commit renames the staged files over their targets, in order, and fsyncs the directory.
func commit(files []stagedFile) error {
	for i := range files {
		if err := os.Rename(files[i].tmp, files[i].target); err != nil {
			return fmt.Errorf("install %s: %w", files[i].target, err)
		}
		files[i].tmp = ""
	}
	d, err := os.Open(filepath.Dir(files[0].target))
	if err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(files[0].target), err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(files[0].target), err)
	}
	return nil
}
