package pki

import (
	"fmt"
	"strings"
)

// Kind is what a certificate is for: a member or a client. ("Role" is kept for what a member
// is in its group — PRIMARY, STANDBY, ASYNC — as the status shows it.)
type Kind int

// Kinds. A member certificate serves the member port in both directions and the server side
// of the client port; a client certificate only authenticates a client.
const (
	KindMember Kind = iota // member
	KindClient             // client
)

func (k Kind) String() string {
	if k == KindClient {
		return "client"
	}
	return "member"
}

// ParseKind reads "member" or "client"; the empty string means member.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "", "member":
		return KindMember, nil
	case "client":
		return KindClient, nil
	}
	return 0, fmt.Errorf("certificate kind %q: use member or client", s)
}
