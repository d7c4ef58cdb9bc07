package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mirrorkv/mirrorkv/wire"
)

// The /v1/tls routes act on one member's own TLS material, so these calls go to the one
// endpoint named, never to another member on failure. They need an admin certificate.

// TLSOf returns the trust material one member has in force.
func (c *Client) TLSOf(ctx context.Context, endpoint string) (wire.TLSInfo, error) {
	var info wire.TLSInfo
	err := c.onceJSON(ctx, endpoint, http.MethodGet, "/v1/tls", nil, &info)
	return info, err
}

// PushTrust makes one member trust the CAs of p on p.Port, with their CRLs.
func (c *Client) PushTrust(ctx context.Context, endpoint string, p wire.TrustPush) (wire.TLSInfo, error) {
	var info wire.TLSInfo
	err := c.onceJSON(ctx, endpoint, http.MethodPost, "/v1/tls/trust", &p, &info)
	return info, err
}

// KeyRequestOf asks one member to make a new key and returns its CSR (PEM). The key stays
// on the member until PushCert installs a certificate for it.
func (c *Client) KeyRequestOf(ctx context.Context, endpoint string) ([]byte, error) {
	var kr wire.KeyRequest
	if err := c.onceJSON(ctx, endpoint, http.MethodPost, "/v1/tls/csr", struct{}{}, &kr); err != nil {
		return nil, err
	}
	return []byte(kr.CSR), nil
}

// PushCert installs certPEM on one member with the key it made for KeyRequestOf.
func (c *Client) PushCert(ctx context.Context, endpoint string, certPEM []byte) (wire.TLSInfo, error) {
	var info wire.TLSInfo
	err := c.onceJSON(ctx, endpoint, http.MethodPost, "/v1/tls/cert", &wire.CertPush{Cert: string(certPEM)}, &info)
	return info, err
}

func (c *Client) onceJSON(ctx context.Context, endpoint, method, path string, in, out any) error {
	ep, err := normalizeEndpoint(endpoint)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req := request{method: method, path: path, idempotent: method == http.MethodGet}
	if in != nil {
		if req.body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		req.header = jsonHeader()
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.once(ctx, ep, req)
	if err != nil {
		return fmt.Errorf("%s %s%s: %w", method, ep, path, err)
	}
	return decode(resp, out)
}
