package pki

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestEndorse(t *testing.T) {
	old, next, stranger := newTestCA(t, CAOptions{Name: "old CA"}), newTestCA(t, CAOptions{Name: "new CA"}), newTestCA(t, CAOptions{Name: "old CA"})
	parse := func(pemData []byte) *x509.Certificate {
		t.Helper()
		certs, err := ParseCertificates(pemData)
		if err != nil {
			t.Fatal(err)
		}
		return certs[0]
	}
	byOld, err := old.Endorse(next.cert)
	if err != nil {
		t.Fatal(err)
	}
	byStranger, err := stranger.Endorse(next.cert)
	if err != nil {
		t.Fatal(err)
	}
	ofStranger, err := old.Endorse(stranger.cert)
	if err != nil {
		t.Fatal(err)
	}
	now := old.clock.now()
	for _, tc := range []struct {
		name         string
		added        *x509.Certificate
		endorsements []*x509.Certificate
		trusted      []*x509.Certificate
		when         time.Time
		ok           bool
	}{
		{"endorsed by the CA in force", next.cert, []*x509.Certificate{parse(byOld)}, []*x509.Certificate{old.cert}, now, true},
		{"no endorsement", next.cert, nil, []*x509.Certificate{old.cert}, now, false},
		// The stranger carries the old CA's name, not its key.
		{"endorsed by a CA of the same name", next.cert, []*x509.Certificate{parse(byStranger)}, []*x509.Certificate{old.cert}, now, false},
		{"an endorsement of another key", stranger.cert, []*x509.Certificate{parse(byOld)}, []*x509.Certificate{old.cert}, now, false},
		{"an endorsement of that key", stranger.cert, []*x509.Certificate{parse(ofStranger)}, []*x509.Certificate{old.cert}, now, true},
		{"endorsed by a CA not in force", next.cert, []*x509.Certificate{parse(byOld)}, []*x509.Certificate{stranger.cert}, now, false},
		{"an endorsement past its end", next.cert, []*x509.Certificate{parse(byOld)}, []*x509.Certificate{old.cert}, now.AddDate(20, 0, 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckEndorsed(tc.added, tc.endorsements, tc.trusted, tc.when)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrNotEndorsed)) {
				t.Fatalf("CheckEndorsed = %v, want ok %v", err, tc.ok)
			}
		})
	}
	if _, err := old.Endorse(parse(mustIssuePEM(t, old))); err == nil {
		t.Error("Endorse of a leaf certificate passed; want a refusal")
	}
}

func mustIssuePEM(t *testing.T, ca *CA) []byte {
	t.Helper()
	is, err := ca.Issue(IssueRequest{Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	return is.CertPEM
}
