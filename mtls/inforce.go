package mtls

import (
	"crypto/x509"
	"slices"
)

// Chain is the certificate chain this side presents now, leaf first: what peers see,
// which may differ from the files when a reload was refused.
func (s *Source) Chain() []*x509.Certificate { return slices.Clone(s.mat.Load().chain) }

// CAs is the CA bundle in force now.
func (s *Source) CAs() []*x509.Certificate { return slices.Clone(s.mat.Load().cas) }
