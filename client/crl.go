package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mirrorkv/mirrorkv/wire"
)

// PushCRL hands the group a CRL (PEM, as `mirrorkv ca crl` writes crl.pem). The primary
// checks it against the CA bundles of both ports and commits it for the port whose CA signed
// it; every member then puts it in force and closes the live connections of the certificates
// it revokes. Needs an admin certificate. Pushing the same CRL again changes nothing, so the
// request is retried like a read.
func (c *Client) PushCRL(ctx context.Context, crlPEM []byte) (wire.CRLPushed, error) {
	var out wire.CRLPushed
	body, err := json.Marshal(wire.CRLPush{CRL: string(crlPEM)})
	if err != nil {
		return out, fmt.Errorf("encode CRL: %w", err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/crl", body: body, header: jsonHeader(), idempotent: true})
	if err != nil {
		return out, fmt.Errorf("push CRL: %w", err)
	}
	return out, decode(resp, &out)
}
