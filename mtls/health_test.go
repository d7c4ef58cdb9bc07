package mtls

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// A CRL past its next update must neither stop the member (every member restarting that
// day would stay down) nor be dropped (its revocations would come back to life): it stays in
// force, and Health and the log say what to do.
func TestSource_CRLExpiry(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	now := time.Now()
	self := rca.Issue(pkitest.Spec{CN: "self", NotAfter: now.Add(90 * 24 * time.Hour)})
	revoked := rca.Member("revoked")
	rca.Revoke(revoked)
	cases := []struct {
		name  string
		next  time.Time
		want  reason.Code
		level expiryLevel
	}{
		{"fresh", now.Add(30 * 24 * time.Hour), reason.OK, levelOK},
		{"due in six days", now.Add(6 * 24 * time.Hour), reason.CRLExpiring, levelWarn},
		{"due in an hour", now.Add(time.Hour), reason.CRLExpiring, levelUrgent},
		{"past its next update", now.Add(-time.Hour), reason.CRLExpired, levelExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			crl := rca.WriteFile("crl-"+tc.name+".der", rca.CRLUntil(tc.next))
			log := newReasonLog()
			src := sourceFor(t, PortMember, self, rca.CertPath, crl, log.logger())
			code, deadline := src.Health()
			if code != tc.want {
				t.Fatalf("Health = %v, want %v", code, tc.want)
			}
			if tc.want != reason.OK && !deadline.Equal(tc.next.Truncate(time.Second)) {
				t.Errorf("Health deadline %v, want the CRL's next update %v", deadline, tc.next)
			}
			if got := levelOf(src.CRLNextUpdate(), time.Now()); got != tc.level {
				t.Errorf("level %d, want %d", got, tc.level)
			}
			if tc.want != reason.OK {
				if got := log.next(t); got != tc.want {
					t.Errorf("logged reason %v at start, want %v", got, tc.want)
				}
			}
			// The revocations it lists still hold, whatever its age.
			err := src.authorise(src.mat.Load(), []*x509.Certificate{revoked.Cert}, nil, accepting, "")
			if reason.Of(err, reason.OK) != reason.Revoked {
				t.Fatalf("revoked peer under a %s CRL: %v; want refused as revoked", tc.name, err)
			}
		})
	}
	t.Run("warned again only on a new level", func(t *testing.T) {
		crl := rca.WriteFile("crl-soon.der", rca.CRLUntil(now.Add(6*24*time.Hour)))
		log := newReasonLog()
		clock := now
		src := sourceFor(t, PortMember, self, rca.CertPath, crl, log.logger(), func(c *Config) { c.Now = func() time.Time { return clock } })
		if got := log.next(t); got != reason.CRLExpiring {
			t.Fatalf("start: logged %v, want CRLExpiring", got)
		}
		src.noteExpiry() // same level, same day: quiet
		clock = now.Add(6*24*time.Hour - 30*time.Minute)
		src.noteExpiry() // a day or less left
		clock = now.Add(7 * 24 * time.Hour)
		src.noteExpiry() // past it
		for _, want := range []reason.Code{reason.CRLExpiring, reason.CRLExpired} {
			if got := log.next(t); got != want {
				t.Fatalf("logged %v, want %v", got, want)
			}
		}
		select {
		case c := <-log.ch:
			t.Fatalf("logged %v more than once per level", c)
		default:
		}
	})
	t.Run("own certificate due within a week", func(t *testing.T) {
		soon := rca.Issue(pkitest.Spec{CN: "soon", NotAfter: now.Add(3 * 24 * time.Hour)})
		src := sourceFor(t, PortMember, soon, rca.CertPath, "", nil)
		if code, deadline := src.Health(); code != reason.CertExpiring || !deadline.Equal(soon.Cert.NotAfter) {
			t.Fatalf("Health = %v, %v; want CertExpiring at %v", code, deadline, soon.Cert.NotAfter)
		}
	})
	t.Run("a forged CRL is still refused", func(t *testing.T) {
		forged := rca.WriteFile("forged.crl", rca.ForeignCRL())
		_, err := NewSource(Config{Port: PortMember, CertFile: self.CertPath, KeyFile: self.KeyPath, CAFile: rca.CertPath, CRLFile: forged, SystemRoots: noSystemRoots}, nil)
		if ce, ok := errors.AsType[*CredentialError](err); !ok || ce.Reason != reason.CRLInvalid {
			t.Fatalf("CRL signed by another key: %v; want reason CRLInvalid", err)
		}
	})
}
