package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// Dial connects to the member port at addr and returns a *tls.Conn once the handshake has
// passed this side's policy and the acceptor has acknowledged it. A refusal by either side
// is a *HandshakeError with a reason; the whole exchange is bounded by the dial timeout.
func (s *Source) Dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	seen := s.conns.epoch.Load()
	m := s.mat.Load()
	d := net.Dialer{}
	if s.cfg.LocalAddr != nil {
		d.LocalAddr = s.cfg.LocalAddr
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &HandshakeError{Reason: reason.Unreachable, Peer: addr, Err: fmt.Errorf("dial member %s: %w", addr, err)}
	}
	tc := &trackedConn{Conn: raw, src: s, port: "member", dir: dialling, addr: addr}
	var asked [][]byte
	tc.tls = tls.Client(tc, s.dialConfig(m, addr, &asked))
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	if err := tc.tls.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, s.dialFailed(m, addr, asked, err)
	}
	if err := readAck(tc.tls); err != nil {
		raw.Close()
		return nil, s.dialFailed(m, addr, asked, err)
	}
	_ = raw.SetDeadline(time.Time{})
	if !s.register(tc, seen) {
		return nil, &HandshakeError{Reason: reason.RefusedByPeer, Peer: addr, Err: errors.New("the member policy changed during the handshake and no longer admits this peer")}
	}
	return tc.tls, nil
}

func readAck(c *tls.Conn) error {
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrNoAck
		}
		return fmt.Errorf("wait for the member's acknowledgement: %w", err)
	}
	if b[0] != ackByte {
		return fmt.Errorf("member answered %#x instead of the acknowledgement; is this a mirrorkv member port?", b[0])
	}
	return nil
}

func (s *Source) dialFailed(m *material, addr string, asked [][]byte, err error) error {
	code := codeOf(err)
	if code == reason.RefusedByPeer || code == reason.NoCertificate {
		// The acceptor only sent an alert; our own certificate may say why.
		if own := selfDiagnose(m, asked, s.cfg.Now()); own != reason.OK {
			code = own
		}
	}
	he := &HandshakeError{Reason: code, Peer: addr, Err: err}
	s.refused("member", addr, he, "member handshake failed")
	return he
}

// selfDiagnose checks this side's own certificate the way a peer would, to turn a bare
// "bad certificate" alert into a specific reason: validity, usages, our own CRL, and whether
// our issuer is among the CAs the acceptor asked for. OK means nothing is wrong locally.
func selfDiagnose(m *material, asked [][]byte, now time.Time) reason.Code {
	if m == nil || m.leaf == nil {
		return reason.NoCertificate
	}
	if err := pki.CheckValidity(m.leaf, now); err != nil {
		return reason.Of(err, reason.HandshakeFailed)
	}
	if err := pki.CheckUsage(m.leaf, pki.UseMember); err != nil {
		return reason.Of(err, reason.HandshakeFailed)
	}
	if m.isRevoked(m.leaf) {
		return reason.Revoked
	}
	if len(asked) > 0 && !slices.ContainsFunc(asked, func(n []byte) bool { return bytes.Equal(n, m.leaf.RawIssuer) }) {
		return reason.UnknownCA
	}
	return reason.OK
}
