package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/mirrorkv/mirrorkv/wire"
)

// Status returns the group's status as one member sees it (the first that answers).
func (c *Client) Status(ctx context.Context) (wire.Status, error) {
	var st wire.Status
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/status", idempotent: true})
	if err != nil {
		return st, fmt.Errorf("get status: %w", err)
	}
	return st, decode(resp, &st)
}

// Members returns the authorised members of the group.
func (c *Client) Members(ctx context.Context) ([]wire.Member, error) {
	var ms []wire.Member
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/members", idempotent: true})
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return ms, decode(resp, &ms)
}

// AddMember authorises m's DN and adds it to the group (as a non-voter first; a failover
// member is promoted once it has caught up). Needs an admin certificate.
func (c *Client) AddMember(ctx context.Context, m wire.Member) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode member %s: %w", m.Name, err)
	}
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/members", body: body, header: jsonHeader()}); err != nil {
		return fmt.Errorf("add member %s: %w", m.Name, err)
	}
	return nil
}

// RemoveMember removes the member and withdraws its DN's authorisation. Needs admin.
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	return c.memberOp(ctx, http.MethodDelete, name, "", "remove member")
}

// Promote makes an async member a failover member (a voter). Needs admin.
func (c *Client) Promote(ctx context.Context, name string) error {
	return c.memberOp(ctx, http.MethodPost, name, "/promote", "promote member")
}

// TransferLeadership makes the member named to the primary. Needs admin.
func (c *Client) TransferLeadership(ctx context.Context, to string) error {
	return c.memberOp(ctx, http.MethodPost, to, "/transfer", "transfer leadership to")
}

// Prefer makes the member named the preferred primary: the group hands it the primary role
// whenever it is in sync. An empty name withdraws the preference. Needs admin.
func (c *Client) Prefer(ctx context.Context, name string) error {
	if name == "" {
		if _, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/preferred"}); err != nil {
			return fmt.Errorf("withdraw the preferred primary: %w", err)
		}
		return nil
	}
	return c.memberOp(ctx, http.MethodPost, name, "/prefer", "prefer member")
}

func (c *Client) memberOp(ctx context.Context, method, name, suffix, what string) error {
	p := "/v1/members/" + url.PathEscape(name) + suffix
	req := request{method: method, path: p}
	if method == http.MethodPost {
		req.header = jsonHeader() // the server takes admin POSTs as JSON only
	}
	if _, err := c.do(ctx, req); err != nil {
		return fmt.Errorf("%s %s: %w", what, name, err)
	}
	return nil
}

// jsonHeader marks an admin request as JSON: the server refuses admin POSTs of any other
// type, which a browser could send cross-site.
func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }
