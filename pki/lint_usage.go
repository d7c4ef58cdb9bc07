package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"

	"github.com/mirrorkv/mirrorkv/reason"
)

// needs lists the TLS uses a role requires.
func needs(r Kind) (server, client bool) { return r == KindMember, true }

// shared turns the refusal of one of the rules the ports apply (CheckUsage, CheckGroup,
// CheckValidity) into a finding with that refusal's reason code.
func shared(rule string, err error, detail, fix string) Finding {
	return Finding{rule, SeverityError, errors.Unwrap(err).Error() + detail, fix, reason.Of(err, reason.BadCredentials)}
}

// checkExtKeyUsage: Go and openssl accept a certificate for a use only if its EKU extension
// (when present) lists it; a member uses its one certificate as server and as client. The
// verdict is CheckExtKeyUsage's, the ports' own.
func checkExtKeyUsage(c *lintCtx) []Finding {
	if noEKU(c.leaf) {
		return []Finding{{"ext-key-usage", SeverityInfo, "no extendedKeyUsage extension: every use is allowed", "", 0}}
	}
	if err := CheckExtKeyUsage(c.leaf, UseOf(c.in.Kind)); err != nil {
		return []Finding{shared("ext-key-usage", err, " (peers fail with 'unsupported certificate' or 'incompatible key usage')",
			fixReissue(c.in.Kind)+"; with openssl, sign with extendedKeyUsage = serverAuth, clientAuth")}
	}
	return nil
}

func fixReissue(r Kind) string {
	if r == KindClient {
		return "reissue it with 'mirrorkv ca issue --client'"
	}
	return "reissue it with 'mirrorkv ca issue' (member certificates carry serverAuth and clientAuth)"
}

// checkKeyUsage: a TLS peer signs the handshake with its key, so digitalSignature is needed
// when keyUsage is present. keyEncipherment only matters to TLS 1.2 peers doing RSA key
// transport, which mirrorkv never negotiates, hence a warning.
func checkKeyUsage(c *lintCtx) []Finding {
	ku := c.leaf.KeyUsage
	if ku == 0 {
		return nil
	}
	var out []Finding
	if err := CheckKeyUsage(c.leaf); err != nil {
		out = append(out, shared("key-usage", err, ", which a TLS handshake needs",
			fixReissue(c.in.Kind)+"; with openssl, sign with keyUsage = digitalSignature (and keyEncipherment for RSA)"))
	}
	if _, rsaKey := c.leaf.PublicKey.(*rsa.PublicKey); rsaKey && c.in.Kind == KindMember && ku&x509.KeyUsageKeyEncipherment == 0 {
		out = append(out, Finding{"key-usage", SeverityWarning, "RSA member certificate whose keyUsage lacks keyEncipherment: OpenSSL-based TLS 1.2 peers refuse it as a server", "reissue it with 'mirrorkv ca issue', which sets keyEncipherment for RSA keys", 0})
	}
	return out
}

// oidNetscapeCertType is the pre-standard extension still set by some corporate CAs.
func oidNetscapeCertType() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}
}

// checkNetscapeCertType: openssl honours the Netscape cert type, so a type without "SSL
// Client" or "SSL Server" refuses that use, whatever the EKU says.
func checkNetscapeCertType(c *lintCtx) []Finding {
	for _, ext := range c.leaf.Extensions {
		if !ext.Id.Equal(oidNetscapeCertType()) {
			continue
		}
		var bits asn1.BitString
		if rest, err := asn1.Unmarshal(ext.Value, &bits); err != nil || len(rest) > 0 {
			return []Finding{{"netscape-cert-type", SeverityWarning, "Netscape cert type extension is malformed",
				fixReissue(c.in.Kind) + ", which does not set it", 0}}
		}
		server, client := c.uses()
		var missing []string
		if client && bits.At(0) == 0 {
			missing = append(missing, "SSL Client")
		}
		if server && bits.At(1) == 0 {
			missing = append(missing, "SSL Server")
		}
		if len(missing) > 0 {
			return []Finding{{"netscape-cert-type", SeverityError,
				"Netscape cert type lacks " + strings.Join(missing, " and ") + ", so OpenSSL-based peers refuse it",
				fixReissue(c.in.Kind) + ", which does not set this obsolete extension", 0}}
		}
	}
	return nil
}

// checkGroup: a member certificate names exactly one group, and that group is the one asked
// for, if any: CheckGroup's verdict, the member port's own.
func checkGroup(c *lintCtx) []Finding {
	if c.in.Kind != KindMember {
		return nil
	}
	fix := "reissue it with 'mirrorkv ca issue --group GROUP', GROUP being the members' 'serve --group'"
	g, err := GroupOf(c.leaf)
	if err != nil {
		return []Finding{shared("group", reason.Wrap(reason.WrongGroup, err), "", fix)}
	}
	if c.in.Group != "" {
		if err := CheckGroup(c.leaf, c.in.Group); err != nil {
			return []Finding{shared("group", err, "; members of "+c.in.Group+" refuse it", fix)}
		}
	}
	return []Finding{{"group", SeverityInfo, "member group: " + g, "", 0}}
}

// checkClientAccess: a client's access comes from its access URI, read by AccessOf exactly as
// the server reads it; a client certificate without one grants nothing.
func checkClientAccess(c *lintCtx) []Finding {
	if c.in.Kind != KindClient {
		return nil
	}
	a, err := AccessOf(c.leaf)
	switch {
	case errors.Is(err, ErrNoAccess):
		return []Finding{{"client-access", SeverityError, "no access: the certificate carries no access URI, so the server grants it nothing",
			"reissue it with 'mirrorkv ca issue --client --access admin|readwrite|readonly'", 0}}
	case err != nil:
		return []Finding{{"client-access", SeverityError, "client access URI: " + err.Error(),
			"reissue it with 'mirrorkv ca issue --client --access admin|readwrite|readonly'", 0}}
	}
	return []Finding{{"client-access", SeverityInfo, "client access: " + string(a), "", 0}}
}
