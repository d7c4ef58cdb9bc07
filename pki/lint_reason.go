package pki

import (
	"strings"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Reason is the documented reason code of the fault a finding describes, the one a peer or
// `serve` reports for it, so that logs, probe and lint give it one number. Info findings
// have none (reason.OK).
func (f Finding) Reason() reason.Code {
	if f.Severity == SeverityInfo {
		return reason.OK
	}
	if f.code != reason.OK {
		return f.code // made by a rule the ports share
	}
	switch strings.TrimPrefix(f.Rule, "ca-") {
	case "key-usage", "netscape-cert-type":
		return reason.BadKeyUsage
	case "expired", "expiring-soon":
		return reason.CertExpired
	case "not-yet-valid":
		return reason.CertNotYetValid
	case "unknown-ca", "intermediate":
		return reason.UnknownCA
	case "key-mismatch":
		return reason.KeyMismatch
	case "revoked":
		return reason.Revoked
	case "crl-signature", "crl-stale", "crl-unreadable":
		return reason.CRLInvalid
	case "public-ca":
		return reason.PublicCA
	case "client-access":
		return reason.NoAccess
	case "key-file-mode":
		return reason.KeyFileMode
	case "group":
		return reason.WrongGroup
	}
	return reason.BadCredentials
}
