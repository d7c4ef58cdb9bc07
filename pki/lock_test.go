package pki

import (
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"
)

// TestCA_ConcurrentIssueAndRevoke: commands that each open the CA, as separate 'mirrorkv ca'
// processes do, and issue, revoke and write CRLs at once lose none of each other's updates.
func TestCA_ConcurrentIssueAndRevoke(t *testing.T) {
	const issuers, revokers, crls = 8, 8, 4
	ca := newTestCA(t, CAOptions{})
	var toRevoke []*big.Int
	for i := range revokers {
		is, err := ca.Issue(IssueRequest{Name: fmt.Sprintf("old%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		toRevoke = append(toRevoke, is.Cert.SerialNumber)
	}
	open := func() (*CA, error) {
		// Each opens its own CA with a real random source: serials must not repeat.
		return OpenCAWith(ca.Dir(), OpenOptions{Clock: Clock{Now: func() time.Time { return t0 }}})
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		issued []*big.Int
		errs   = make(chan error, issuers+revokers+crls)
	)
	for i := range issuers {
		wg.Go(func() {
			c, err := open()
			if err == nil {
				var is *Issued
				if is, err = c.Issue(IssueRequest{Name: fmt.Sprintf("new%d", i)}); err == nil {
					mu.Lock()
					issued = append(issued, is.Cert.SerialNumber)
					mu.Unlock()
				}
			}
			errs <- err
		})
	}
	for _, s := range toRevoke {
		wg.Go(func() {
			c, err := open()
			if err == nil {
				err = c.Revoke(s, ReasonSuperseded)
			}
			errs <- err
		})
	}
	for range crls {
		wg.Go(func() {
			c, err := open()
			if err == nil {
				_, err = c.CRL(1)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	idx, err := ca.loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Certs) != revokers+issuers {
		t.Errorf("index holds %d certificates, want %d", len(idx.Certs), revokers+issuers)
	}
	for _, s := range issued {
		if idx.find(s) == nil {
			t.Errorf("issued serial %s missing from the index", serialHex(s))
		}
	}
	for _, s := range toRevoke {
		if r := idx.find(s); r == nil || r.RevokedAt == nil {
			t.Errorf("revocation of %s lost: %+v", serialHex(s), r)
		}
	}
	if idx.CRLNumber != 1+crls {
		t.Errorf("CRL number %d, want %d", idx.CRLNumber, 1+crls)
	}
}
