package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// serveRPC answers member RPCs on conn, one at a time, until the conn fails or Close.
func (c *Cluster) serveRPC(conn net.Conn) {
	defer conn.Close()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	for {
		method, p, err := readFrame(r, maxFrame)
		if err != nil {
			return
		}
		resp, err := c.handle(method, p)
		kind := respOK
		if err != nil {
			if _, ok := hintOf(err); !ok && reason.Of(err, reason.OK) == reason.NotPrimary {
				err = c.fwd.notPrimary(err) // lost the role meanwhile: name the new primary
			}
			kind, resp = respErr, encodeError(err)
		}
		if err := writeFrame(w, kind, resp); err != nil {
			return
		}
	}
}

// handle runs one request. What only the primary may do is refused with reason.NotPrimary
// elsewhere, never forwarded again, so a request cannot loop between members.
func (c *Cluster) handle(method byte, p []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(c.life.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if c.life.closing.Load() {
		return nil, shutdownErr()
	}
	switch method {
	case methodSelf:
		return answerSelf(p, c.rep.self()), nil
	case methodMembers:
		if len(p) == 0 {
			ms, err := c.mem.members()
			return encodeMembers(ms), err
		}
		ms, applied, err := c.mem.membersAt()
		return encodeMembersAt(ms, applied), err
	case methodApply, methodReadIndex:
		return c.fwd.serve(ctx, method, p)
	}
	// Membership and leadership changes never come this way (adminOnPrimary): a member may
	// ask for reads and forward writes, nothing else.
	return nil, reason.Wrap(reason.NotAllowed, fmt.Errorf("member rpc method %d: %w", method, ErrNotAllowed))
}

// rpcDuration is the longest a member RPC may run on the peer, past the transport timeout.
func (c *Cluster) rpcDuration(method byte) time.Duration {
	switch method {
	case methodApply, methodReadIndex:
		return c.cfg.ApplyTimeout
	}
	return 0
}
