package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mirrorkv/mirrorkv/reason"
)

// profileReplaces reports the mirrorkv rules a profile's own rules stand in for: the usages
// it wants are the product's, and a product's certificate names no mirrorkv group or access.
func profileReplaces(rule string) bool {
	switch rule {
	case "ext-key-usage", "key-usage", "client-access", "group", "intermediate":
		return true
	}
	return false
}

// uses is what the certificate is checked for: the profile's uses, or its kind's.
func (c *lintCtx) uses() (server, client bool) {
	if p := c.in.Profile; p != nil {
		return p.ServerAuth, p.ClientAuth
	}
	return needs(c.in.Kind)
}

// lintProfile runs the rules of c.in.Profile.
func lintProfile(c *lintCtx) []Finding {
	var out []Finding
	for _, check := range []func(*lintCtx, *Profile) []Finding{
		profileExtKeyUsage, profileKeyUsage, profileIntermediate, profileCAOrder, profileCN, profileFileName, profileSQLNames,
	} {
		out = append(out, check(c, c.in.Profile)...)
	}
	return out
}

func profileFix(p *Profile, openssl string) string {
	return fmt.Sprintf("reissue it with 'mirrorkv ca issue --profile %s' (or 'ca sign --profile %s'); with openssl, %s", p.Name, p.Name, openssl)
}

// profileExtKeyUsage: an extKeyUsage extension, when present, must name every use the
// product makes of the certificate; no extension at all allows every use.
func profileExtKeyUsage(c *lintCtx, p *Profile) []Finding {
	if noEKU(c.leaf) {
		return []Finding{{"ext-key-usage", SeverityInfo, "no extendedKeyUsage extension: every use is allowed", "", 0}}
	}
	server, client := HasEKU(c.leaf, x509.ExtKeyUsageServerAuth), HasEKU(c.leaf, x509.ExtKeyUsageClientAuth)
	var missing []string
	code := reason.OK
	if p.ClientAuth && !client {
		missing, code = append(missing, "clientAuth"), reason.MissingClientAuth
	}
	if p.ServerAuth && !server {
		missing, code = append(missing, "serverAuth"), reason.MissingServerAuth
	}
	if len(missing) == 0 {
		return nil
	}
	has := "neither serverAuth nor clientAuth"
	switch {
	case server:
		has = "serverAuth"
	case client:
		has = "clientAuth"
	}
	msg := fmt.Sprintf("extendedKeyUsage has %s but not %s: %s needs %s", has, strings.Join(missing, " or "), p.Name, p.Uses())
	if p.BothRoles {
		msg += " (one certificate serves %MirrorServer and %MirrorClient; IRIS fails with 'sslv3 alert unsupported certificate')"
	}
	return []Finding{{"ext-key-usage", SeverityError, msg, profileFix(p, "extendedKeyUsage = "+p.Uses()+", or no extendedKeyUsage at all"), code}}
}

// profileKeyUsage: keyUsage, when present, needs digitalSignature; IRIS also wants
// keyEncipherment (its server role) whatever the key; an RSA server without it is refused by
// OpenSSL peers doing RSA key transport.
func profileKeyUsage(c *lintCtx, p *Profile) []Finding {
	ku := c.leaf.KeyUsage
	if ku == 0 {
		return nil
	}
	fix := profileFix(p, "keyUsage = digitalSignature, keyEncipherment, or no keyUsage at all")
	var out []Finding
	if ku&x509.KeyUsageDigitalSignature == 0 {
		out = append(out, Finding{"key-usage", SeverityError, "keyUsage lacks digitalSignature, which every TLS handshake needs", fix, reason.BadKeyUsage})
	}
	_, rsaKey := c.leaf.PublicKey.(*rsa.PublicKey)
	switch {
	case ku&x509.KeyUsageKeyEncipherment != 0:
	case p.BothRoles:
		out = append(out, Finding{"key-usage", SeverityError, "keyUsage lacks keyEncipherment: IRIS wants digitalSignature (client) and keyEncipherment (server) when keyUsage is present", fix, reason.BadKeyUsage})
	case rsaKey && p.ServerAuth:
		out = append(out, Finding{"key-usage", SeverityWarning, "RSA certificate whose keyUsage lacks keyEncipherment: OpenSSL TLS 1.2 peers refuse it as a server", fix, reason.BadKeyUsage})
	}
	return out
}

// profileIntermediate: a dedicated replication CA signs leaves directly (VAST); elsewhere an
// intermediate is only worth a warning.
func profileIntermediate(c *lintCtx, p *Profile) []Finding {
	sev, fix := SeverityWarning, "use a single-tier CA made by 'mirrorkv ca init'"
	if p.DedicatedCA {
		sev, fix = SeverityError, "make a CA for "+p.Name+" replication alone ('mirrorkv ca init --name Replication-Root-CA') and issue with 'mirrorkv ca issue --profile "+p.Name+"'"
	}
	var out []Finding
	for _, cert := range append(slices.Clone(c.chain[1:]), c.cas...) {
		if cert.IsCA && !isSelfSigned(cert) {
			out = append(out, Finding{"intermediate", sev, "intermediate CA " + DNOf(cert) + " in the chain: " + p.Name + " wants the replication CA to sign the certificate directly", fix, reason.UnknownCA})
		}
	}
	return out
}

// profileCAOrder: a CA file of several certificates lists each one before the one that
// issued it (IRIS reads it in order).
func profileCAOrder(c *lintCtx, p *Profile) []Finding {
	if !p.CAOrder {
		return nil
	}
	for i, cert := range c.cas {
		if isSelfSigned(cert) || (i+1 < len(c.cas) && bytes.Equal(cert.RawIssuer, c.cas[i+1].RawSubject)) {
			continue
		}
		return []Finding{{"ca-order", SeverityError, fmt.Sprintf("the CA file lists %s, but not its issuer %s right after it", DNOf(cert), dnFromRaw(cert.RawIssuer)),
			"order the CA file from the issuing CA up to the root: each certificate followed by the one that signed it", reason.UnknownCA}}
	}
	return nil
}

// profileCN: the product's manual names certificates with a prefix (VAST's Replication-).
func profileCN(c *lintCtx, p *Profile) []Finding {
	if p.CNPrefix == "" || strings.HasPrefix(c.leaf.Subject.CommonName, p.CNPrefix) {
		return nil
	}
	return []Finding{{"profile-name", SeverityWarning, fmt.Sprintf("CN %q does not start with %q, as %s's manual names replication certificates", c.leaf.Subject.CommonName, p.CNPrefix, p.Name),
		fmt.Sprintf("reissue it with 'mirrorkv ca issue --profile %s --name CLUSTER' (CN %sCLUSTER)", p.Name, p.CNPrefix), 0}}
}

// profileFileName: a product that looks the certificate up by name (Amlen) needs it.
func profileFileName(c *lintCtx, p *Profile) []Finding {
	want, got := FileFor(p.Files, FileCert), filepath.Base(c.in.CertFile)
	if !p.FixedNames || c.in.CertFile == "" || got == want {
		return nil
	}
	if strings.EqualFold(got, want) {
		return []Finding{{"file-name", SeverityWarning, fmt.Sprintf("%s: %s's manual spells the file %s in one place and %s in another", got, p.Name, want, strings.ToUpper(want[:2])+want[2:]),
			fmt.Sprintf("install it under both names (ln -s %s %s)", got, want), 0}}
	}
	return []Finding{{"file-name", SeverityError, fmt.Sprintf("%s looks for the certificate as %s, not %s", p.Name, want, filepath.Base(c.in.CertFile)),
		fmt.Sprintf("install it as %s (and its key as %s)", want, FileFor(p.Files, FileKey)), reason.BadCredentials}}
}

// profileSQLNames shows the strings MariaDB compares with REQUIRE SUBJECT and ISSUER.
func profileSQLNames(c *lintCtx, p *Profile) []Finding {
	if !p.SQLNames {
		return nil
	}
	subject, issuer, err := MariaDBNames(c.leaf)
	if err != nil {
		return []Finding{{"sql-names", SeverityError, "names: " + err.Error(), "reissue it with 'mirrorkv ca issue --profile " + p.Name + "'", reason.BadCredentials}}
	}
	return []Finding{{"sql-names", SeverityInfo, fmt.Sprintf("the server compares REQUIRE SUBJECT %s AND ISSUER %s", sqlString(subject), sqlString(issuer)), "", 0}}
}
