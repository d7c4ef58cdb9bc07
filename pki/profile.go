package pki

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Profile is what one product's replication TLS wants of a certificate and its files. Issue,
// Sign, Lint and docs/profiles.md all read the same table, so the certificate a profile
// issues is the one its lint passes.
type Profile struct {
	Name    string // as given to --profile
	Product string // the product and the part of it that uses the certificate
	Summary string // one line for 'mirrorkv ca profiles'

	// KeyType is the key 'ca issue' makes unless --key-type says otherwise: RSA where the
	// product's manual uses RSA and older TLS stacks may know nothing else.
	KeyType KeyType

	// ServerAuth and ClientAuth are the extended key usages the certificate carries and the
	// ones lint requires when the extension is present.
	ServerAuth, ClientAuth bool
	// BothRoles is IRIS's rule: one certificate serves %MirrorServer and %MirrorClient, so
	// keyUsage (when present) needs digitalSignature and keyEncipherment, and extKeyUsage
	// (when present) serverAuth and clientAuth, whatever the key type.
	BothRoles bool
	// CNPrefix is put before --name to make the subject CN (VAST: "Replication-").
	CNPrefix string
	// DedicatedCA: the CA must sign nothing but this product's certificates and no
	// intermediate may stand between it and the leaf (VAST).
	DedicatedCA bool
	// FixedNames: the product finds the files by these names only (Amlen's keystore).
	FixedNames bool
	// CAOrder: a CA file of several certificates must list each before its issuer (IRIS).
	CAOrder bool
	// SQLNames: the product authorises a peer by its subject and issuer as OpenSSL's
	// X509_NAME_oneline renders them (MariaDB's REQUIRE SUBJECT ... AND ISSUER ...).
	SQLNames bool
	// Replica names the flag that makes the certificate a replica's, which adds the files
	// marked ReplicaOnly; empty when the product has no such distinction.
	Replica string
	// Files is the layout the product expects in --out.
	Files []ProfileFile
	// Note is printed after the files: a point of the product's manual worth knowing.
	Note string
	// setup writes the configuration to paste into the product.
	setup func(*strings.Builder, SetupInput) error
}

// FileContent is what a profile file holds.
type FileContent int

// File contents.
const (
	FileCA   FileContent = iota // the CA certificate: what the peers trust
	FileCert                    // the leaf certificate
	FileKey                     // the leaf's private key (0600)
)

// ProfileFile is one file of a profile's layout. Name may hold "{name}", replaced by --name.
type ProfileFile struct {
	Name        string
	Content     FileContent
	ReplicaOnly bool   // written only for a replica (MariaDB's client-cert.pem)
	Note        string // what the product calls it or where it goes
}

// Profiles returns the profile table, in the order 'mirrorkv ca profiles' lists them.
func Profiles() []*Profile {
	return []*Profile{profileIRIS(), profileVAST(), profileAmlen(), profileMariaDB(), profileManticore()}
}

// ProfileByName returns the profile called name (case-insensitive).
func ProfileByName(name string) (*Profile, error) {
	names := make([]string, 0, 5)
	for _, p := range Profiles() {
		if strings.EqualFold(p.Name, name) {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return nil, fmt.Errorf("profile %q: %w (%s)", name, ErrUnknownProfile, strings.Join(names, ", "))
}

func profileIRIS() *Profile {
	return &Profile{
		Name: "iris", KeyType: KeyRSA3072, Product: "InterSystems IRIS mirroring (%MirrorServer and %MirrorClient)",
		Summary:    "one certificate for client and server: keyUsage and extKeyUsage name both roles",
		ServerAuth: true, ClientAuth: true, BothRoles: true, CAOrder: true,
		Files: []ProfileFile{
			{"ca.pem", FileCA, false, "File containing trusted Certificate Authority X.509 certificate(s)"},
			{"{name}.pem", FileCert, false, "File containing this configuration's X.509 certificate"},
			{"{name}.key", FileKey, false, "File containing associated private key"},
		},
		Note:  "IRIS refuses a certificate with one role only: 'sslv3 alert unsupported certificate'.",
		setup: setupIRIS,
	}
}

func profileVAST() *Profile {
	return &Profile{
		Name: "vast", KeyType: KeyRSA3072, Product: "VAST secure replication (mTLS between clusters, port 49002)",
		Summary:    "Replication-<cluster> certificates from a CA that signs nothing else, no intermediates",
		ServerAuth: true, ClientAuth: true, CNPrefix: "Replication-", DedicatedCA: true,
		Files: []ProfileFile{
			{"ca.crt", FileCA, false, "CA/Root Certificate box"},
			{"{name}.crt", FileCert, false, "cluster certificate box"},
			{"{name}.key", FileKey, false, "cluster key box"},
		},
		Note:  "Any certificate the CA signs is accepted for replication: keep this CA for VAST replication alone.",
		setup: setupVAST,
	}
}

func profileAmlen() *Profile {
	return &Profile{
		Name: "amlen", KeyType: KeyRSA3072, Product: "Eclipse Amlen high availability pairs",
		Summary:    "ha_cert.pem and ha_key.pem for the HA keystore, UseSecuredConnections",
		ServerAuth: true, ClientAuth: true, FixedNames: true,
		Files: []ProfileFile{
			{"ha_cert.pem", FileCert, false, "the HA certificate"},
			{"ha_key.pem", FileKey, false, "the HA key"},
			{"ha_ca.pem", FileCA, false, "the CA for the truststore"},
		},
		Note: "Amlen's manual also spells the files HA_cert.pem and HA_key.pem (its migration section); " +
			"the pairing section's ha_cert.pem and ha_key.pem are written here: if the server log says it " +
			"cannot find HA_cert.pem, link the names (ln -s ha_cert.pem HA_cert.pem; ln -s ha_key.pem HA_key.pem).",
		setup: setupAmlen,
	}
}

func profileMariaDB() *Profile {
	return &Profile{
		Name: "mariadb", KeyType: KeyECDSAP256, Product: "MariaDB replication (primary and replica over TLS)",
		Summary:    "server-cert.pem (and client-cert.pem for a replica), REQUIRE SUBJECT/ISSUER and CHANGE MASTER TO",
		ServerAuth: true, ClientAuth: true, SQLNames: true, Replica: "primary",
		Files: []ProfileFile{
			{"ca.pem", FileCA, false, "ssl_ca and MASTER_SSL_CA"},
			{"server-cert.pem", FileCert, false, "ssl_cert"},
			{"server-key.pem", FileKey, false, "ssl_key"},
			{"client-cert.pem", FileCert, true, "MASTER_SSL_CERT"},
			{"client-key.pem", FileKey, true, "MASTER_SSL_KEY"},
		},
		Note:  "MariaDB compares REQUIRE SUBJECT and ISSUER with the certificate's names as strings, byte for byte.",
		setup: setupMariaDB,
	}
}

func profileManticore() *Profile {
	return &Profile{
		Name: "manticore", KeyType: KeyECDSAP256, Product: "Manticore Search (searchd https listener)",
		Summary:    "ssl_ca, ssl_cert and ssl_key for searchd's https listener",
		ServerAuth: true,
		Files: []ProfileFile{
			{"ca-cert.pem", FileCA, false, "ssl_ca"},
			{"server-cert.pem", FileCert, false, "ssl_cert"},
			{"server-key.pem", FileKey, false, "ssl_key"},
		},
		Note:  "Plain HTTP to the https listener is answered 400; replication and the binary API stay unencrypted.",
		setup: setupManticore,
	}
}

// CommonName is the subject CN the profile gives a certificate issued for name.
func (p *Profile) CommonName(name string) string { return p.CNPrefix + name }

// extKeyUsage is what the profile's certificates carry.
func (p *Profile) extKeyUsage() []x509.ExtKeyUsage {
	var eku []x509.ExtKeyUsage
	if p.ServerAuth {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if p.ClientAuth {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	return eku
}

// keyUsage is what the profile's certificates carry for a key: digitalSignature always;
// keyEncipherment for RSA servers (OpenSSL's TLS 1.2 RSA key transport) and always for
// IRIS, whose rule names it.
func (p *Profile) keyUsage(rsaKey bool) x509.KeyUsage {
	ku := x509.KeyUsageDigitalSignature
	if p.BothRoles || (rsaKey && p.ServerAuth) {
		ku |= x509.KeyUsageKeyEncipherment
	}
	return ku
}

// Layout is the profile's files for a replica or not, "{name}" replaced.
func (p *Profile) Layout(name string, replica bool) []ProfileFile {
	var out []ProfileFile
	for _, f := range p.Files {
		if f.ReplicaOnly && !replica {
			continue
		}
		f.Name = strings.ReplaceAll(f.Name, "{name}", name)
		out = append(out, f)
	}
	return out
}

// FileFor returns the name of the first file of the layout holding c.
func FileFor(layout []ProfileFile, c FileContent) string {
	i := slices.IndexFunc(layout, func(f ProfileFile) bool { return f.Content == c })
	if i < 0 {
		return ""
	}
	return layout[i].Name
}

// Uses is the profile's extended key usages as openssl names them, for messages and docs.
func (p *Profile) Uses() string {
	var s []string
	if p.ServerAuth {
		s = append(s, "serverAuth")
	}
	if p.ClientAuth {
		s = append(s, "clientAuth")
	}
	return strings.Join(s, ", ")
}

// profileKindPrefix marks a profile's certificates in the CA index ("profile:vast").
const profileKindPrefix = "profile:"

// checkDedicated refuses to issue for a profile that needs a CA of its own when the CA
// has issued anything else still valid; revoked and expired certificates no longer pass.
func checkDedicated(idx *index, p *Profile, now time.Time) error {
	if p == nil || !p.DedicatedCA {
		return nil
	}
	n := 0
	for _, r := range idx.Certs {
		if r.Kind != profileKindPrefix+p.Name && r.RevokedAt == nil && now.Before(r.NotAfter) {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("profile %s: %d valid certificate(s) of other kinds: %w", p.Name, n, ErrNotDedicated)
	}
	return nil
}
