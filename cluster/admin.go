package cluster

import (
	"errors"
	"fmt"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// AdminVerifier checks, on the primary, the identity an admin operation was asked under:
// the client certificate chain (DER, leaf first) that the member which took the request
// verified on its client port. A member certificate carries no authority of its own, so the
// primary checks that chain again against its own client CA and CRL before it changes the
// membership or the leadership.
type AdminVerifier interface {
	// VerifyAdmin returns the admin's subject DN, or an error coded reason.AdminRequired
	// (or the certificate's own refusal reason) when chain is not a valid admin client.
	VerifyAdmin(chain [][]byte) (string, error)
}

// maxAdminChain bounds the certificates an admin operation may carry: a leaf and a few
// intermediates.
const maxAdminChain = 8

// errNoAdminVerifier is what a Cluster built without Config.Admins answers to every admin
// operation: no identity can be checked, so none is accepted.
var errNoAdminVerifier = errors.New("this member has no client CA to check admin identities against")

// checkAdmin is the primary's own check of the identity behind an admin operation.
func (c *Cluster) checkAdmin(chain [][]byte) error {
	if c.cfg.Admins == nil {
		return reason.Wrap(reason.AdminRequired, errNoAdminVerifier)
	}
	if len(chain) == 0 {
		return reason.Wrap(reason.AdminRequired, errors.New("the request carries no admin client certificate"))
	}
	dn, err := c.cfg.Admins.VerifyAdmin(chain)
	if err != nil {
		if reason.Of(err, reason.OK) == reason.OK {
			err = reason.Wrap(reason.AdminRequired, err)
		}
		return fmt.Errorf("check admin identity: %w", err)
	}
	c.log.Info("admin operation", "admin", dn)
	return nil
}

// forwardable reports whether a command may come over the member channel from another
// member: the writes a client made there, or a barrier. Membership changes never travel
// this way; they are admin operations with an identity the primary checks (checkAdmin).
func forwardable(data []byte) error {
	cmd, err := store.DecodeCommand(data)
	if err != nil {
		return err
	}
	switch cmd.Op {
	case store.OpPut, store.OpDelete, store.OpNoop:
		return nil
	}
	return reason.Wrap(reason.NotAllowed, fmt.Errorf("a forwarded command of kind %d: %w", cmd.Op, ErrNotAllowed))
}

func (e *enc) chain(certs [][]byte) {
	e.uvarint(uint64(len(certs)))
	for _, c := range certs {
		e.uvarint(uint64(len(c)))
		e.b = append(e.b, c...)
	}
}

func (d *dec) chain() [][]byte {
	n := d.count(1)
	if n > maxAdminChain {
		d.fail()
		return nil
	}
	certs := make([][]byte, 0, n)
	for range n {
		certs = append(certs, d.bytes())
	}
	return certs
}
