package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
)

// ErrGrantMismatch is returned by Sign and CheckGrant for a request that names a group or
// an access level (a renewal carries the old certificate's) other than the one the CA is
// told to grant.
var ErrGrantMismatch = errors.New("the CA grants what its flags say, never what a request asks for")

// Grant is what a certificate is for: a member of a group, or a client with an access level.
type Grant struct {
	Kind   Kind
	Group  string // members only
	Access Access // clients only
}

func (g Grant) String() string {
	if g.Kind == KindClient {
		return "client with access " + string(g.Access)
	}
	return "member of group " + g.Group
}

// Flags are the 'mirrorkv ca sign' and 'ca issue' flags that grant g.
func (g Grant) Flags() string {
	if g.Kind == KindClient {
		return "--client --access " + string(g.Access)
	}
	return "--group " + g.Group
}

// grantOf is what opts grant, defaults filled in as certify fills them.
func grantOf(opts SignOptions) Grant {
	if opts.Kind == KindClient {
		access, err := ParseAccess(string(opts.Access))
		if err != nil {
			access = opts.Access // certify refuses it; name it as given
		}
		return Grant{Kind: KindClient, Access: access}
	}
	group := opts.Group
	if group == "" {
		group = DefaultGroup
	}
	return Grant{Kind: KindMember, Group: group}
}

// GrantOf reads the grant a certificate carries in its URIs: an access URI makes it a
// client's, a group URI a member's. ok is false when it carries neither.
func GrantOf(cert *x509.Certificate) (g Grant, ok bool, err error) {
	if hasURN(cert.URIs, accessNSS) || hasURN(cert.URIs, legacyAccessNSS) {
		access, err := AccessOf(cert)
		return Grant{Kind: KindClient, Access: access}, true, err
	}
	if hasURN(cert.URIs, groupNSS) {
		group, err := GroupOf(cert)
		return Grant{Kind: KindMember, Group: group}, true, err
	}
	return Grant{}, false, nil
}

// hasURN reports whether any of uris is urn:mirrorkv:NSS... for the namespace part nss.
func hasURN(uris []*url.URL, nss string) bool {
	for _, u := range uris {
		if rest, ok := mirrorkvURN(u); ok {
			if _, ok := cutFold(rest, nss); ok {
				return true
			}
		}
	}
	return false
}

// CheckGrant refuses to sign a request that names a grant other than the one opts give.
// The CA never grants from a request: it grants what its operator says. But a renewal
// carries the old certificate's group or access, and a silent difference is a mistake
// (an admin renewed as readwrite, the default, or a member renewed into another group, whom
// its own group then refuses), so it stops the signing with the flags that match.
func CheckGrant(csr *x509.CertificateRequest, opts SignOptions) error {
	asked, ok, err := GrantOf(&x509.Certificate{URIs: csr.URIs, RawSubject: csr.RawSubject})
	if err != nil {
		return fmt.Errorf("the request's URIs: %w", err)
	}
	if given := grantOf(opts); ok && asked != given {
		return fmt.Errorf("the request asks for a %s, but signing it as given would make a %s: sign it with %s, or make a new request: %w",
			asked, given, asked.Flags(), ErrGrantMismatch)
	}
	return nil
}

// KeyTypeOf is the key type of pub, as GenerateKey names it; empty when mirrorkv makes no
// such key (an RSA 2048 key, say: its renewal takes the default).
func KeyTypeOf(pub crypto.PublicKey) KeyType {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return KeyECDSAP256
		}
	case ed25519.PublicKey:
		return KeyEd25519
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 3072:
			return KeyRSA3072
		case 4096:
			return KeyRSA4096
		}
	}
	return ""
}

// NewRenewal makes a new key of type kt (old's own type when empty and mirrorkv makes it)
// and a CSR that asks again for everything old names: its subject DN byte for byte, so that
// a DN authorised under policy dn stays authorised; its DNS, IP and e-mail SANs; and its
// URIs, so that the CA sees the group or access it had (Sign refuses to grant another).
// The key never leaves the host that runs this.
func NewRenewal(old *x509.Certificate, kt KeyType) (*Request, error) {
	name := old.Subject.CommonName
	switch {
	case old.IsCA:
		return nil, fmt.Errorf("renew %q: it is a CA certificate; make a new CA with 'mirrorkv ca init' and rotate to it (docs/tls.md)", DNOf(old))
	case name == "":
		return nil, fmt.Errorf("renew %q: its subject has no CN, which 'mirrorkv ca sign' needs; make a new request with 'mirrorkv cert request --name NAME'", DNOf(old))
	}
	if kt == "" {
		kt = KeyTypeOf(old.PublicKey)
	}
	key, err := GenerateKey(kt)
	if err != nil {
		return nil, fmt.Errorf("renew %q: %w", DNOf(old), err)
	}
	tmpl := &x509.CertificateRequest{RawSubject: old.RawSubject, DNSNames: old.DNSNames,
		IPAddresses: old.IPAddresses, EmailAddresses: old.EmailAddresses, URIs: old.URIs}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("make renewal request for %q: %w", DNOf(old), err)
	}
	keyPEM, err := MarshalPrivateKey(key, nil)
	if err != nil {
		return nil, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return &Request{Name: name, CSRPEM: csrPEM, KeyPEM: keyPEM}, nil
}

// WriteRequestFiles writes r's CSR to csrPath (0644) and its key to keyPath (0600), both or
// neither.
func WriteRequestFiles(csrPath, keyPath string, r *Request) error {
	return writeFilesAtomic([]fileSpec{{csrPath, r.CSRPEM, modePublic}, {keyPath, r.KeyPEM, modeSecret}})
}
