package mtls

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// files is the raw content of a Source's credential files, read together.
type files struct {
	cert, key, ca, crl []byte
	sum                [sha256.Size]byte
}

func readFiles(cfg Config) (*files, error) {
	f := &files{}
	read := func(path string, dst *[]byte) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return credErr(reason.BadCredentials, path, "%w; check the path and that the mirrorkv user may read it", err)
		}
		*dst = b
		return nil
	}
	if err := errors.Join(read(cfg.CertFile, &f.cert), read(cfg.KeyFile, &f.key), read(cfg.CAFile, &f.ca)); err != nil {
		return nil, err
	}
	if err := checkKeyFileMode(cfg.KeyFile); err != nil {
		return nil, err
	}
	if cfg.CRLFile != "" {
		if err := read(cfg.CRLFile, &f.crl); err != nil {
			return nil, err
		}
	}
	h := sha256.New()
	for _, b := range [][]byte{f.cert, f.key, f.ca, f.crl} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	copy(f.sum[:], h.Sum(nil))
	return f, nil
}

// checkKeyFileMode refuses a private key file that grants any permission to its group or
// to other users: whoever can read it can pose as this member. The rule is pki's, which
// `cert lint --key` applies too.
func checkKeyFileMode(path string) error {
	err := pki.CheckKeyFileMode(path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pki.ErrKeyFileMode):
		return credErr(reason.KeyFileMode, path, "%w", err)
	}
	return credErr(reason.BadCredentials, path, "%w; check the path and that the mirrorkv user may read it", err)
}

// material is one immutable snapshot of trust material. It is never modified after the swap.
type material struct {
	gen     uint64
	sum     [sha256.Size]byte
	cert    *tls.Certificate // Leaf set
	leaf    *x509.Certificate
	chain   []*x509.Certificate // our own chain, leaf first
	cas     []*x509.Certificate
	roots   *x509.CertPool
	revoked map[string]bool // revKey(issuer, serial)
	// crlNext is the earliest NextUpdate of the CRLs in force; zero without a CRL.
	crlNext time.Time
	// files is what the snapshot was built from, so that a CRL pushed to the group can be
	// put in force on the same files (groupcrl.go).
	files *files
	// fileCRLs are the CRLs of the CRL file, each signed by a CA of the bundle; numbers is
	// the number of the CRL in force per issuing CA (pki.CRLIssuerID), from either source.
	fileCRLs []*x509.RevocationList
	numbers  map[string]*big.Int
	server   *tls.Config // what GetConfigForClient hands out for this snapshot
	// sessions is per snapshot: a session resumed after a rotation would carry a peer
	// chain the new trust material may refuse, failing a dial that a full handshake passes.
	sessions tls.ClientSessionCache
}

func revKey(rawIssuer []byte, serial fmt.Stringer) string {
	return string(rawIssuer) + "\x00" + serial.String()
}

func (m *material) isRevoked(c *x509.Certificate) bool {
	return m.revoked[revKey(c.RawIssuer, c.SerialNumber)]
}

// parseMaterial builds and checks a snapshot from raw files. It never returns a partly
// checked snapshot: any problem is a CredentialError naming the file.
func parseMaterial(cfg Config, f *files, now time.Time) (*material, error) {
	m := &material{sum: f.sum, files: f}
	var err error
	if m.cas, m.roots, err = parseCAs(cfg.CAFile, f.ca); err != nil {
		return nil, err
	}
	if m.cert, err = parseKeyPair(cfg, f); err != nil {
		return nil, err
	}
	m.leaf = m.cert.Leaf
	if m.chain, err = ParseCertificates(f.cert); err != nil {
		return nil, credErr(reason.BadCredentials, cfg.CertFile, "certificate: %w", err)
	}
	if cfg.CRLFile != "" {
		if err := m.addCRLs(cfg.CRLFile, f.crl); err != nil {
			return nil, err
		}
	}
	m.enforce(nil)
	if err := checkOwnLeaf(cfg, m, now); err != nil {
		return nil, err
	}
	return m, nil
}

func parseCAs(path string, data []byte) ([]*x509.Certificate, *x509.CertPool, error) {
	cas, err := ParseCertificates(data)
	if err != nil {
		return nil, nil, credErr(reason.BadCredentials, path, "CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		if !ca.IsCA || !ca.BasicConstraintsValid {
			return nil, nil, credErr(reason.BadCredentials, path, "CA bundle holds %q, which is not a CA certificate; put only CA certificates in the bundle", dnOf(ca))
		}
		pool.AddCert(ca)
	}
	return cas, pool, nil
}

func parseKeyPair(cfg Config, f *files) (*tls.Certificate, error) {
	chain, err := ParseCertificates(f.cert)
	if err != nil {
		return nil, credErr(reason.BadCredentials, cfg.CertFile, "certificate: %w", err)
	}
	certPEM := f.cert
	if !looksPEM(certPEM) {
		certPEM = pemCerts(chain)
	}
	// The pair is compared here, not recognised in crypto/tls's error text: a key of another
	// certificate is the commonest mistake and gets its own reason.
	key, err := pki.ParsePrivateKey(f.key, nil)
	switch {
	case errors.Is(err, pki.ErrPassphrase):
		return nil, credErr(reason.BadCredentials, cfg.KeyFile, "the private key is encrypted; a member reads its key without a passphrase, so keep it unencrypted and private (0600): openssl pkey -in KEY -out KEY")
	case err != nil:
		return nil, credErr(reason.BadCredentials, cfg.KeyFile, "private key: %w", err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, credErr(reason.KeyMismatch, cfg.KeyFile, "key does not match certificate %s", cfg.CertFile)
	}
	pair, err := tls.X509KeyPair(certPEM, f.key)
	if err != nil {
		return nil, credErr(reason.BadCredentials, cfg.KeyFile, "private key: %w", err)
	}
	pair.Leaf = chain[0]
	return &pair, nil
}

// addCRLs reads the CRL file, accepting only CRLs signed by a CA of the bundle: a CRL
// nobody vouches for must not decide who is revoked. enforce then puts them in force, with
// the CRLs pushed to the group (groupcrl.go).
func (m *material) addCRLs(path string, data []byte) error {
	crls, err := ParseCRLs(data)
	if err != nil {
		return credErr(reason.CRLInvalid, path, "%w", err)
	}
	for _, rl := range crls {
		if err := pki.CheckCRLSignature(rl, m.cas); err != nil {
			return credErr(reason.CRLInvalid, path, "%w", err)
		}
	}
	m.fileCRLs = crls
	return nil
}
