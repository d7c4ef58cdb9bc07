package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/mirrorkv/mirrorkv/pki"
)

// certs are credentials made with mirrorkv's pki package for a system that localgroup does
// not set up (etcd, the ceiling): one CA for the servers, one for the clients, ECDSA P-256
// like mirrorkv's own.
type certs struct {
	ServerCA, ClientCA     string
	ServerCert, ServerKeys []string // per member
	ClientCert, ClientKey  string
}

// makeCerts issues n member certificates (serverAuth and clientAuth, IP SAN 127.0.0.1) and
// one read-write client certificate.
func makeCerts(dir string, n int) (*certs, error) {
	serverCA, err := pki.InitCA(filepath.Join(dir, "server-ca"), pki.CAOptions{Name: "bench server CA", Unencrypted: true})
	if err != nil {
		return nil, fmt.Errorf("create server CA: %w", err)
	}
	clientCA, err := pki.InitCA(filepath.Join(dir, "client-ca"), pki.CAOptions{Name: "bench client CA", Unencrypted: true})
	if err != nil {
		return nil, fmt.Errorf("create client CA: %w", err)
	}
	for _, sub := range []string{"members", "clients"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	c := &certs{
		ServerCA: filepath.Join(dir, "server-ca", pki.CACertFile),
		ClientCA: filepath.Join(dir, "client-ca", pki.CACertFile),
	}
	for i := range n {
		is, err := serverCA.Issue(pki.IssueRequest{
			Name: fmt.Sprintf("m%d", i+1), IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNS: []string{"localhost"}, Kind: pki.KindMember,
		})
		if err != nil {
			return nil, fmt.Errorf("issue member certificate: %w", err)
		}
		cert, key, err := pki.WriteIssued(filepath.Join(dir, "members"), is)
		if err != nil {
			return nil, err
		}
		c.ServerCert, c.ServerKeys = append(c.ServerCert, cert), append(c.ServerKeys, key)
	}
	is, err := clientCA.Issue(pki.IssueRequest{Name: "bench", Kind: pki.KindClient, Access: pki.AccessReadWrite})
	if err != nil {
		return nil, fmt.Errorf("issue client certificate: %w", err)
	}
	if c.ClientCert, c.ClientKey, err = pki.WriteIssued(filepath.Join(dir, "clients"), is); err != nil {
		return nil, err
	}
	return c, nil
}
