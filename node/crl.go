package node

import (
	"context"
	"fmt"

	"github.com/mirrorkv/mirrorkv/cluster"
	"github.com/mirrorkv/mirrorkv/mtls"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// CRLs pushed to the group (`mirrorkv ca revoke --push`) live in the store, replicated
// through raft. The store signals each change (store.Options.OnCRL); the node then reads
// the group's CRLs and hands each port's to its TLS source, which checks them again and
// closes the live connections of what they revoke.

// crlChanged is store.Options.OnCRL: it runs on the apply path, so it only signals.
func (n *Node) crlChanged() {
	select {
	case n.crlKick <- struct{}{}:
	default:
	}
}

// followCRLs puts the group's CRLs in force each time they change, until ctx ends.
func (n *Node) followCRLs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.crlKick:
		}
		n.applyGroupCRLs()
	}
}

// applyGroupCRLs hands the CRLs the group holds to the TLS source of their port. A CRL a
// source refuses is logged there, and the CRL in force for its CA stays.
func (n *Node) applyGroupCRLs() {
	crls, err := n.store.CRLs()
	if err != nil {
		n.log.Error("read the group's CRLs; the CRLs in force stay", "err", err)
		return
	}
	byPort := map[string][][]byte{}
	for _, c := range crls {
		byPort[c.Port] = append(byPort[c.Port], c.DER)
	}
	for port, src := range map[string]*mtls.Source{store.CRLPortMember: n.memberSrc, store.CRLPortClient: n.clientSrc} {
		if len(byPort[port]) > 0 {
			_ = src.SetGroupCRLs(byPort[port]) // each refusal is logged by the source
		}
	}
}

// checkCRL names the port whose CA bundle signed der and checks that it is not older than
// the CRL in force there. The replication and client CAs are distinct (mtls.CheckSharedCA),
// so at most one port knows the signer.
func (n *Node) checkCRL(der []byte) (string, error) {
	memberErr := n.memberSrc.CheckCRL(der)
	if memberErr == nil {
		return store.CRLPortMember, nil
	}
	clientErr := n.clientSrc.CheckCRL(der)
	if clientErr == nil {
		return store.CRLPortClient, nil
	}
	for _, err := range []error{memberErr, clientErr} {
		if reason.Of(err, reason.CRLInvalid) != reason.CRLUnknownSigner {
			return "", err // the signer is known there, and the CRL refused for another cause
		}
	}
	return "", reason.Wrap(reason.CRLUnknownSigner, fmt.Errorf(
		"the CRL is signed by no CA of the member port's bundle (%s) nor of the client port's (%s): %w",
		n.cfg.MemberTLS.CAFile, n.cfg.ClientTLS.CAFile, memberErr))
}

// apiGroup is the cluster as the API sees it, with the CRL push checked against this
// member's CA bundles.
type apiGroup struct {
	*cluster.Cluster
	n *Node
}

func (g apiGroup) PushCRL(ctx context.Context, der []byte) (string, error) {
	return g.Cluster.PushCRL(ctx, der, g.n.checkCRL)
}
