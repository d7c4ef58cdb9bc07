package mtls

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// A join pin names the member a new member may learn the group from: "sha256:HEX", the
// SHA-256 fingerprint of its certificate (colons and case do not matter, as openssl and
// `mirrorkv cert inspect` print it), or its subject DN.
const pinSHA256 = "sha256:"

// CheckPin reports whether pin is a well-formed join pin.
func CheckPin(pin string) error {
	_, _, err := parsePin(pin)
	return err
}

// parsePin returns the fingerprint bytes or the canonical DN a pin names.
func parsePin(pin string) (fingerprint []byte, dn string, err error) {
	if rest, ok := strings.CutPrefix(strings.ToLower(pin), pinSHA256); ok {
		b, err := hex.DecodeString(strings.ReplaceAll(rest, ":", ""))
		if err != nil || len(b) != 32 {
			return nil, "", fmt.Errorf("pin %q: want sha256: and 64 hex digits (mirrorkv cert inspect prints the fingerprint)", pin)
		}
		return b, "", nil
	}
	dn, err = pki.CanonicalDN(pin)
	if err != nil {
		return nil, "", fmt.Errorf("pin %q: neither sha256:FINGERPRINT nor a DN: %w", pin, err)
	}
	return nil, dn, nil
}

// checkPins refuses a peer at a join address whose certificate matches none of the pins.
// No pins means none match: a join address is never trusted on the CA's word alone.
func checkPins(pins []string, leaf *x509.Certificate, addr string) error {
	fp := strings.ReplaceAll(pki.Fingerprint(leaf), ":", "")
	dn := dnOf(leaf)
	for _, pin := range pins {
		want, wantDN, err := parsePin(pin)
		if err != nil {
			continue // Validate refuses such pins before a Source is made
		}
		if (want != nil && strings.EqualFold(hex.EncodeToString(want), fp)) || (wantDN != "" && wantDN == dn) {
			return nil
		}
	}
	if len(pins) == 0 {
		return refuse(reason.JoinPinMismatch, "%s: no --join-pin given: %w", addr, errNoPins)
	}
	return refuse(reason.JoinPinMismatch, "%s presented %q (sha256:%s), which matches no --join-pin", addr, dn, fp)
}

var errNoPins = errors.New("a join address is trusted only with the DN or fingerprint of the member expected there")
