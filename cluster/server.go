package cluster

import (
	"bufio"
	"context"
	"errors"
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
				err = c.notPrimary(err) // lost the role meanwhile: name the new primary
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
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if c.closing.Load() {
		return nil, shutdownErr()
	}
	switch method {
	case methodSelf:
		return encodeSelf(c.self()), nil
	case methodMembers:
		ms, err := c.Members(ctx)
		return encodeMembers(ms), err
	}
	if !c.isLeader() {
		return nil, c.notPrimary(nil)
	}
	switch method {
	case methodApply:
		if err := forwardable(p); err != nil {
			return nil, err
		}
		res, err := c.applyLocal(ctx, p)
		if err != nil {
			return nil, err
		}
		return encodeResult(res), nil
	case methodReadIndex:
		idx, err := c.reads.index(ctx)
		var e enc
		e.uvarint(idx)
		return e.b, err
	}
	return nil, c.handleAdmin(method, p)
}

// adminTimeoutFactor × ApplyTimeout bounds a forwarded admin operation, which may wait for
// a new member to catch up; the caller waits that long too when its context has no deadline.
const adminTimeoutFactor = 30

// rpcDuration is the longest a member RPC may run on the peer, past the transport timeout.
func (c *Cluster) rpcDuration(method byte) time.Duration {
	switch method {
	case methodApply, methodReadIndex:
		return c.cfg.ApplyTimeout
	case methodAddMember, methodRemoveMember, methodPromote, methodTransfer:
		return adminTimeoutFactor * c.cfg.ApplyTimeout
	}
	return 0
}

// handleAdmin runs a forwarded membership or leadership request. The member that forwards
// it proves nothing by being a member: the request carries the admin client's certificate
// chain, and this member checks it against its own client CA and CRL before acting.
func (c *Cluster) handleAdmin(method byte, p []byte) error {
	// Catching up may take much longer than an apply; the caller's own deadline ends it
	// sooner by closing the conn, which this member only notices afterwards.
	ctx, cancel := context.WithTimeout(c.ctx, adminTimeoutFactor*c.cfg.ApplyTimeout)
	defer cancel()
	switch method {
	case methodAddMember, methodRemoveMember, methodPromote, methodTransfer:
	default:
		return reason.Wrap(reason.NotAllowed, fmt.Errorf("member rpc method %d: %w", method, errors.ErrUnsupported))
	}
	d := dec{b: p}
	admin := d.chain()
	if d.err != nil {
		return fmt.Errorf("decode admin identity: %w", d.err)
	}
	if err := c.checkAdmin(admin); err != nil {
		return err
	}
	switch method {
	case methodAddMember:
		m := d.member()
		if err := d.done(); err != nil {
			return fmt.Errorf("decode member: %w", err)
		}
		return c.addMemberLocal(ctx, m)
	case methodRemoveMember, methodPromote, methodTransfer:
		name := d.str()
		if err := d.done(); err != nil {
			return fmt.Errorf("decode member name: %w", err)
		}
		switch method {
		case methodRemoveMember:
			return c.removeLocal(ctx, admin, name)
		case methodPromote:
			return c.promoteLocal(ctx, name)
		default:
			return c.transferLocal(ctx, name)
		}
	}
	return fmt.Errorf("member rpc method %d: %w", method, errors.ErrUnsupported)
}
