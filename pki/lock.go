package pki

import "path/filepath"

// lockFile is the file in a CA directory that issue, sign, revoke and crl lock for their
// whole read-modify-write of index.json and the CRL number.
const lockFile = ".lock"

// lock takes the CA directory's exclusive lock, waiting for another command to finish with
// it, so that two commands run at once (ca issue in one shell, ca revoke in another, or two
// goroutines) cannot lose each other's update of the index. The returned function releases it.
func (ca *CA) lock() (unlock func(), err error) {
	return lockPath(filepath.Join(ca.dir, lockFile))
}
