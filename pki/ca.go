package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files of a CA directory. ca.key and index.json stay on the CA host; ca.crt and crl.pem go
// to every member.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CRLFile    = "crl.pem"
	IndexFile  = "index.json"
)

// Defaults, in days.
const (
	DefaultCADays   = 3650
	DefaultLeafDays = 365
	DefaultCRLDays  = 30
	DefaultCAName   = "mirrorkv replication CA"
)

// backdate is how far NotBefore (and a CRL's ThisUpdate) lies in the past, so that a host
// whose clock runs a little behind accepts a certificate issued a moment ago.
const backdate = 5 * time.Minute

// CAOptions configures InitCA. The zero value asks for a passphrase: InitCA writes ca.key
// unencrypted only when told so with Unencrypted.
type CAOptions struct {
	Name        string  // subject CN; DefaultCAName when empty
	KeyType     KeyType // KeyECDSAP256 when empty
	Days        int     // DefaultCADays when zero
	Passphrase  []byte  // encrypts ca.key; required unless Unencrypted
	Unencrypted bool    // write ca.key in the clear, for throwaway and test CAs; excludes Passphrase
	CRLDays     int     // next update of the first CRL; DefaultCRLDays when zero
	Clock
}

// Clock supplies time and randomness; zero fields mean time.Now and crypto/rand. Tests set
// them so that validity dates and serial numbers are deterministic.
type Clock struct {
	Now  func() time.Time
	Rand io.Reader
}

func (c Clock) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c Clock) rand() io.Reader {
	if c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

// OpenOptions configures OpenCAWith.
type OpenOptions struct {
	Passphrase []byte
	Clock
}

// CA is an open certificate authority directory: its certificate, its key and its records.
type CA struct {
	dir       string
	cert      *x509.Certificate
	key       crypto.Signer
	clock     Clock
	encrypted bool // ca.key is encrypted on disk
}

// KeyEncrypted reports whether ca.key is encrypted on disk.
func (ca *CA) KeyEncrypted() bool { return ca.encrypted }

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Dir returns the CA directory.
func (ca *CA) Dir() string { return ca.dir }

// InitCA creates a new CA in dir (made if missing): ca.crt, ca.key (0600, encrypted PKCS#8
// unless opts.Unencrypted), crl.pem listing nothing, and index.json. It refuses a
// directory that already holds any of them (ErrCAExists), and a missing passphrase when
// Unencrypted is not set (ErrNoPassphrase).
func InitCA(dir string, opts CAOptions) (*CA, error) {
	for _, f := range []string{CACertFile, CAKeyFile, IndexFile, CRLFile} {
		if exists(filepath.Join(dir, f)) {
			return nil, fmt.Errorf("init CA in %s: %s exists: %w", dir, f, ErrCAExists)
		}
	}
	switch {
	case len(opts.Passphrase) == 0 && !opts.Unencrypted:
		return nil, fmt.Errorf("init CA in %s: %w", dir, ErrNoPassphrase)
	case len(opts.Passphrase) > 0 && opts.Unencrypted:
		return nil, fmt.Errorf("init CA in %s: a passphrase was given together with Unencrypted; choose one", dir)
	}
	key, err := GenerateKey(opts.KeyType)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	cert, err := selfSign(key, opts)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	ca := &CA{dir: dir, cert: cert, key: key, clock: opts.Clock}
	if err := ca.writeNew(opts); err != nil {
		return nil, fmt.Errorf("init CA in %s: %w", dir, err)
	}
	return ca, nil
}

// writeNew writes the files of a new CA in one group, the index last, so that a failure
// leaves no CA behind.
func (ca *CA) writeNew(opts CAOptions) error {
	keyPEM, err := MarshalPrivateKey(ca.key, opts.Passphrase)
	if err != nil {
		return err
	}
	days := opts.CRLDays
	if days <= 0 {
		days = DefaultCRLDays
	}
	idx := &index{CRLNumber: 1}
	crl, err := ca.makeCRL(idx, days)
	if err != nil {
		return err
	}
	idxJSON, err := idx.marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ca.dir, 0o700); err != nil {
		return fmt.Errorf("create CA directory: %w", err)
	}
	return writeFilesAtomic([]fileSpec{
		{ca.path(CAKeyFile), keyPEM, modeSecret},
		{ca.path(CACertFile), pemCert(ca.cert), modePublic},
		{ca.path(CRLFile), crl, modePublic},
		{ca.path(IndexFile), idxJSON, modeSecret},
	})
}

func selfSign(key crypto.Signer, opts CAOptions) (*x509.Certificate, error) {
	name, days := opts.Name, opts.Days
	if name == "" {
		name = DefaultCAName
	}
	if days <= 0 {
		days = DefaultCADays
	}
	serial, err := randomSerial(opts.rand())
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	now := opts.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(0, 0, days),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // a single-tier CA: it signs leaves only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
		AuthorityKeyId:        skid, // Go fills the AKID only when issuer and subject differ
	}
	return createCertificate(opts.rand(), tmpl, tmpl, key.Public(), key)
}

func createCertificate(r io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(r, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// OpenCA opens a CA directory made by InitCA; passphrase decrypts an encrypted ca.key.
func OpenCA(dir string, passphrase []byte) (*CA, error) {
	return OpenCAWith(dir, OpenOptions{Passphrase: passphrase})
}

// OpenCAWith is OpenCA with a clock, for tests and tools that fix the time.
func OpenCAWith(dir string, opts OpenOptions) (*CA, error) {
	ca := &CA{dir: dir, clock: opts.Clock}
	certPEM, err := os.ReadFile(ca.path(CACertFile))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !exists(ca.path(IndexFile))) {
		return nil, fmt.Errorf("open CA %s: %w", dir, ErrNotCA)
	}
	if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("open CA certificate %s: %w", ca.path(CACertFile), err)
	}
	ca.cert = certs[0]
	keyPEM, err := os.ReadFile(ca.path(CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open CA key (it must stay beside %s): %w", CACertFile, err)
	}
	ca.encrypted = isEncryptedKey(keyPEM)
	if ca.key, err = ParsePrivateKey(keyPEM, opts.Passphrase); err != nil {
		return nil, fmt.Errorf("open CA key %s: %w", ca.path(CAKeyFile), err)
	}
	if !publicKeyEqual(ca.cert.PublicKey, ca.key.Public()) {
		return nil, fmt.Errorf("open CA %s: %s does not belong to %s; restore the pair from a backup", dir, CAKeyFile, CACertFile)
	}
	return ca, nil
}

func (ca *CA) path(name string) string { return filepath.Join(ca.dir, name) }

// randomSerial returns a positive random 128-bit serial number.
func randomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read random serial: %w", err)
	}
	b[0] |= 0x40 // never zero, and always 16 bytes long
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the
// subjectPublicKey bits (the same hash Go 1.25+ uses for the CA SKIDs it makes itself).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}
