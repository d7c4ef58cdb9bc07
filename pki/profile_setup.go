package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// SetupInput is what a profile's configuration snippet names.
type SetupInput struct {
	Dir     string // where the product reads the files from
	Layout  []ProfileFile
	Cert    *x509.Certificate
	CA      *x509.Certificate
	Primary string // MariaDB: HOST:PORT of the primary, given for a replica
	User    string // MariaDB: the replication user; DefaultReplicationUser when empty
}

// DefaultReplicationUser is the user a MariaDB replica logs in to its primary as.
const DefaultReplicationUser = "repl"

func (in SetupInput) path(c FileContent) string {
	return filepath.Join(in.Dir, FileFor(in.Layout, c))
}

// pathOf returns the path of the file called name in the layout.
func (in SetupInput) pathOf(name string) string { return filepath.Join(in.Dir, name) }

// Setup returns the configuration to paste into the product for the files in.Layout.
func (p *Profile) Setup(in SetupInput) (string, error) {
	var b strings.Builder
	err := p.setup(&b, in)
	return b.String(), err
}

func keyKind(c *x509.Certificate) string {
	if _, ok := c.PublicKey.(*rsa.PublicKey); ok {
		return "RSA"
	}
	return "ECDSA"
}

func setupIRIS(b *strings.Builder, in SetupInput) error {
	fmt.Fprintf(b, `IRIS, on this member: System Administration > Security > SSL/TLS Configurations >
Create Configurations for Mirror (it saves %%MirrorServer and %%MirrorClient with the same files):
  File containing trusted Certificate Authority X.509 certificate(s): %s
  File containing this configuration's X.509 certificate:             %s
  File containing associated private key:                             %s
  Private key type:                                                   %s
  Password:                                                           Clear password (the key file is not encrypted)
  Protocols:                                                          TLSv1.2, TLSv1.3
On the other failover member and on async members, the DN in "ID listed as DN in member's
X.509 credentials" is this certificate's subject (the Join as Async page shows it):
  %s
`, in.path(FileCA), in.path(FileCert), in.path(FileKey), keyKind(in.Cert), DNOf(in.Cert))
	return nil
}

func setupVAST(b *strings.Builder, in SetupInput) error {
	fmt.Fprintf(b, `VAST, on this cluster: Settings > Certificates, "Certificates for": Replication; paste
  cluster certificate: %s
  cluster key:         %s
  CA/Root Certificate: %s (the same on every cluster)
then Upload. Check a replication VIP of the cluster (port 49002) from any host:
  echo | openssl s_client -connect VIP:49002
    shows "0 s:CN = %s" issued by "%s", then a handshake failure: no client certificate was given
  echo | openssl s_client -connect VIP:49002 -key %s -cert %s -CAfile %s
    ends with "Verify return code: 0 (ok)"
`, in.path(FileCert), in.path(FileKey), in.path(FileCA), in.Cert.Subject.CommonName, in.CA.Subject.CommonName,
		in.path(FileKey), in.path(FileCert), in.path(FileCA))
	return nil
}

// amlenHA is the HighAvailability object of Amlen's configuration REST API, in the
// manual's field order.
type amlenHA struct {
	Group                 string `json:"Group"`
	EnableHA              bool   `json:"EnableHA"`
	StartupMode           string `json:"StartupMode"`
	RemoteDiscoveryNIC    string `json:"RemoteDiscoveryNIC"`
	LocalReplicationNIC   string `json:"LocalReplicationNIC"`
	LocalDiscoveryNIC     string `json:"LocalDiscoveryNIC"`
	PreferredPrimary      bool   `json:"PreferredPrimary"`
	UseSecuredConnections bool   `json:"UseSecuredConnections"`
}

// AmlenPayload is the body of the POST to ${IMA_ADMIN}/configuration that pairs a server
// over TLS with the user provided credentials.
func AmlenPayload() ([]byte, error) {
	v := map[string]amlenHA{"HighAvailability": {Group: "haPair1", EnableHA: true, StartupMode: "AutoDetect",
		RemoteDiscoveryNIC: "REMOTE_DISCOVERY_IP", LocalReplicationNIC: "LOCAL_REPLICATION_IP",
		LocalDiscoveryNIC: "LOCAL_DISCOVERY_IP", PreferredPrimary: true, UseSecuredConnections: true}}
	return json.MarshalIndent(v, "", "  ")
}

func setupAmlen(b *strings.Builder, in SetupInput) error {
	payload, err := AmlenPayload()
	if err != nil {
		return fmt.Errorf("amlen payload: %w", err)
	}
	fmt.Fprintf(b, `Amlen, on both servers of the pair, copy into the keystore
(default /var/lib/amlen-server/data/certificates/keystore; its location is in server.cfg):
  %s
  %s
and, where the truststore is defined:
  %s
With user provided credentials, certificates are always required (RequireCertificates is
ignored). Then, on each server with its own addresses (PreferredPrimary true on one only):
curl -m 10 -u "${IMA_USER}" -k -X POST -d '%s' "${IMA_ADMIN}/configuration"
`, in.path(FileCert), in.path(FileKey), in.path(FileCA), payload)
	return nil
}

// sqlString quotes s as a MariaDB string literal: a backslash and a quote are escaped, so
// that the server stores s byte for byte.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// MariaDBNames returns the subject and issuer of c as MariaDB compares them in REQUIRE
// SUBJECT and REQUIRE ISSUER.
func MariaDBNames(c *x509.Certificate) (subject, issuer string, err error) {
	if subject, err = Oneline(c.RawSubject); err != nil {
		return "", "", fmt.Errorf("subject: %w", err)
	}
	if issuer, err = Oneline(c.RawIssuer); err != nil {
		return "", "", fmt.Errorf("issuer: %w", err)
	}
	return subject, issuer, nil
}

// MariaDBCreateUser is the statement that lets only c log in as user, over TLS.
func MariaDBCreateUser(user string, c *x509.Certificate) (string, error) {
	subject, issuer, err := MariaDBNames(c)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("CREATE USER %s@'%%' REQUIRE SUBJECT %s AND ISSUER %s;\nGRANT REPLICATION SLAVE ON *.* TO %s@'%%';",
		sqlString(user), sqlString(subject), sqlString(issuer), sqlString(user)), nil
}

func setupMariaDB(b *strings.Builder, in SetupInput) error {
	fmt.Fprintf(b, "[mariadb]\nssl_ca = %s\nssl_cert = %s\nssl_key = %s\nrequire_secure_transport = ON\ntls_version = TLSv1.2,TLSv1.3\n",
		in.pathOf("ca.pem"), in.pathOf("server-cert.pem"), in.pathOf("server-key.pem"))
	subject, issuer, err := MariaDBNames(in.Cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, "\nMariaDB compares these strings with the certificate's:\n  subject: %s\n  issuer:  %s\n", subject, issuer)
	if in.Primary == "" {
		fmt.Fprintln(b, "\nFor a replica of this server, issue the replica's certificate with --primary HOST:PORT:\nit prints the CREATE USER to run here and the CHANGE MASTER TO to run there.")
		return nil
	}
	host, port, err := net.SplitHostPort(in.Primary)
	if err != nil {
		return fmt.Errorf("--primary %q: want HOST:PORT: %w", in.Primary, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--primary %q: port %q is not a number", in.Primary, port)
	}
	user := in.User
	if user == "" {
		user = DefaultReplicationUser
	}
	create, err := MariaDBCreateUser(user, in.Cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, "\n-- on the primary %s: only this certificate logs in as %s, and only over TLS\n%s\n", in.Primary, user, create)
	fmt.Fprintf(b, `
-- on this replica
CHANGE MASTER TO
  MASTER_HOST=%s,
  MASTER_PORT=%s,
  MASTER_USER=%s,
  MASTER_SSL=1,
  MASTER_SSL_CA=%s,
  MASTER_SSL_CERT=%s,
  MASTER_SSL_KEY=%s,
  MASTER_SSL_VERIFY_SERVER_CERT=1;
START REPLICA;
`, sqlString(host), port, sqlString(user), sqlString(in.pathOf("ca.pem")),
		sqlString(in.pathOf("client-cert.pem")), sqlString(in.pathOf("client-key.pem")))
	return nil
}

func setupManticore(b *strings.Builder, in SetupInput) error {
	fmt.Fprintf(b, `searchd {
    listen = 9443:https
    ssl_ca = %s
    ssl_cert = %s
    ssl_key = %s
}
Check it: mirrorkv probe HOST:9443 --ca %s (plain HTTP to that port is answered 400).
`, in.path(FileCA), in.path(FileCert), in.path(FileKey), in.path(FileCA))
	return nil
}
