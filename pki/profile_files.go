package pki

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
)

// WrittenFile is one file WriteProfile wrote.
type WrittenFile struct {
	ProfileFile
	Path string
}

// WriteProfile writes is and the CA certificate in p's layout into outDir: certificates
// 0644, keys 0600, all of them or none. A replica also gets the files marked ReplicaOnly.
// Without a key (signed from a request) the key files are left out.
func WriteProfile(outDir string, p *Profile, is *Issued, ca *x509.Certificate, replica bool) ([]WrittenFile, error) {
	var specs []fileSpec
	var out []WrittenFile
	for _, f := range p.Layout(is.Name, replica) {
		spec := fileSpec{filepath.Join(outDir, f.Name), nil, modePublic}
		switch f.Content {
		case FileCA:
			spec.data = pemCert(ca)
		case FileCert:
			spec.data = is.CertPEM
		case FileKey:
			if is.KeyPEM == nil {
				continue
			}
			spec.data, spec.mode = is.KeyPEM, modeSecret
		}
		specs = append(specs, spec)
		out = append(out, WrittenFile{f, spec.path})
	}
	if err := writeFilesAtomic(specs); err != nil {
		return nil, fmt.Errorf("write %s files: %w", p.Name, err)
	}
	return out, nil
}
