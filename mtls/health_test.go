package mtls

import (
	"crypto/x509"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

// at fixes a Source's clock at *clock, which the test moves.
func at(clock *time.Time) func(*Config) {
	return func(c *Config) { c.Now = func() time.Time { return *clock } }
}

// A CRL past its next update must neither stop the member (every member restarting that
// day would stay down) nor be dropped (its revocations would come back to life): it stays in
// force, and Health and the log say what to do.
func TestSource_CRLExpiry(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	now := time.Now()
	self := rca.Issue(pkitest.Spec{CN: "self", NotAfter: now.Add(90 * day)})
	revoked := rca.Issue(pkitest.Spec{CN: "revoked", NotAfter: now.Add(90 * day)})
	rca.Revoke(revoked)
	next := now.Add(30 * day) // as `mirrorkv ca crl` makes it
	crl := rca.WriteFile("crl.der", rca.CRLUntil(next))
	cases := []struct {
		name  string
		clock time.Time
		want  reason.Code
		level expiryLevel
	}{
		{"fresh: a 30-day CRL does not warn 30 days ahead", now, reason.OK, levelOK},
		{"due in six days", next.Add(-6 * day), reason.CRLExpiring, level7Days},
		{"due in an hour", next.Add(-time.Hour), reason.CRLExpiring, level1Day},
		{"past its next update", next.Add(time.Hour), reason.CRLExpired, levelExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := tc.clock
			log := newReasonLog()
			src := sourceFor(t, PortMember, self, rca.CertPath, crl, log.logger(), at(&clock))
			code, deadline := src.Health()
			if code != tc.want {
				t.Fatalf("Health = %v, want %v", code, tc.want)
			}
			if tc.want != reason.OK && !deadline.Equal(next.Truncate(time.Second)) {
				t.Errorf("Health deadline %v, want the CRL's next update %v", deadline, next)
			}
			m := src.mat.Load()
			if got := levelOf(m.crlDue.ThisUpdate, src.CRLNextUpdate(), clock); got != tc.level {
				t.Errorf("level %d, want %d", got, tc.level)
			}
			if tc.want != reason.OK {
				if got := log.next(t); got != tc.want {
					t.Errorf("logged reason %v at start, want %v", got, tc.want)
				}
			}
			// The revocations it lists still hold, whatever its age.
			err := src.authorise(m, []*x509.Certificate{revoked.Cert}, nil, accepting, "")
			if reason.Of(err, reason.OK) != reason.Revoked {
				t.Fatalf("revoked peer under a %s CRL: %v; want refused as revoked", tc.name, err)
			}
		})
	}
	t.Run("warned once per level, and again each day", func(t *testing.T) {
		log := newReasonLog()
		clock := next.Add(-6 * day)
		src := sourceFor(t, PortMember, self, rca.CertPath, crl, log.logger(), at(&clock))
		if got := log.next(t); got != reason.CRLExpiring {
			t.Fatalf("start: logged %v, want CRLExpiring", got)
		}
		src.noteExpiry() // same level, same day: quiet
		clock = next.Add(-30 * time.Minute)
		src.noteExpiry() // a day or less left
		clock = next.Add(time.Minute)
		src.noteExpiry() // past it
		clock = next.Add(2 * time.Hour)
		src.noteExpiry() // past it still, the same day: quiet
		clock = next.Add(day + time.Minute)
		src.noteExpiry() // a day later: again
		for _, want := range []reason.Code{reason.CRLExpiring, reason.CRLExpired, reason.CRLExpired} {
			if got := log.next(t); got != want {
				t.Fatalf("logged %v, want %v", got, want)
			}
		}
		select {
		case c := <-log.ch:
			t.Fatalf("logged %v more than once per level and day", c)
		default:
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

// The leaf and every CA of the bundle warn at 30, 7 and 1 day before their end, as the CRL
// does, and only when they live at least twice as long as the level.
func TestSource_Expiries(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	now := time.Now()
	year := rca.Issue(pkitest.Spec{CN: "m1", NotAfter: now.Add(365 * day)})
	week := rca.Issue(pkitest.Spec{CN: "m1", NotAfter: now.Add(7 * day)})
	leafCases := []struct {
		name  string
		leaf  *pkitest.Leaf
		clock time.Time
		want  reason.Code
	}{
		{"a year left", year, now, reason.OK},
		{"25 days left", year, now.Add(340 * day), reason.CertExpiring},
		{"5 days left", year, now.Add(360 * day), reason.CertExpiring},
		{"12 hours left", year, now.Add(365*day - 12*time.Hour), reason.CertExpiring},
		{"a week's certificate with 5 days left", week, now.Add(2 * day), reason.OK},
		{"a week's certificate with 12 hours left", week, now.Add(7*day - 12*time.Hour), reason.CertExpiring},
	}
	for _, tc := range leafCases {
		t.Run("leaf: "+tc.name, func(t *testing.T) {
			clock := tc.clock
			log := newReasonLog()
			src := sourceFor(t, PortMember, tc.leaf, rca.CertPath, "", log.logger(), at(&clock))
			es := src.Expiries()
			if tc.want == reason.OK {
				if len(es) != 0 {
					t.Fatalf("Expiries = %+v, want none", es)
				}
				return
			}
			want := Expiry{Port: PortMember, Material: MaterialLeaf, Subject: "CN=m1,O=mirrorkv test", File: tc.leaf.CertPath,
				At: tc.leaf.Cert.NotAfter, Reason: tc.want}
			if len(es) != 1 || es[0] != want {
				t.Fatalf("Expiries = %+v, want [%+v]", es, want)
			}
			if got := log.next(t); got != tc.want {
				t.Errorf("logged %v at start, want %v", got, tc.want)
			}
		})
	}

	// A CA ends 10 years after pkitest makes it; a leaf may outlive it on paper.
	cca := pkitest.NewCA(t, "clients")
	server := rca.Issue(pkitest.Spec{CN: "m1", NotAfter: cca.Cert.NotAfter.Add(365 * day)})
	caCases := []struct {
		name  string
		clock time.Time
		want  reason.Code
	}{
		{"ten years left", now, reason.OK},
		{"20 days left", cca.Cert.NotAfter.Add(-20 * day), reason.CAExpiring},
		{"past it", cca.Cert.NotAfter.Add(time.Hour), reason.CAExpired},
	}
	for _, tc := range caCases {
		t.Run("client CA: "+tc.name, func(t *testing.T) {
			clock := tc.clock
			src := sourceFor(t, PortClient, server, cca.CertPath, "", nil, at(&clock))
			code, deadline := src.Health()
			if code != tc.want {
				t.Fatalf("Health = %v, want %v", code, tc.want)
			}
			if code == reason.OK {
				return
			}
			es := src.Expiries()
			if !deadline.Equal(cca.Cert.NotAfter) || es[0].Material != MaterialCA || es[0].Subject != "CN=clients,O=mirrorkv test" || es[0].File != cca.CertPath {
				t.Fatalf("Expiries = %+v, want the client CA at %v", es, cca.Cert.NotAfter)
			}
		})
	}

	t.Run("most urgent first", func(t *testing.T) {
		old := pkitest.NewCA(t, "old-clients")
		bundle := pkitest.Bundle(t, t.TempDir()+"/bundle.pem", cca, old)
		clock := old.Cert.NotAfter.Add(-10 * day) // both CAs within 30 days
		crl := old.WriteFile("crl.der", old.CRLUntil(old.Cert.NotAfter.Add(-12*day)))
		src := sourceFor(t, PortClient, server, bundle, crl, nil, at(&clock))
		es := src.Expiries()
		var got []reason.Code
		for _, e := range es {
			got = append(got, e.Reason)
		}
		// The CRL (made 1 minute ago, due 2 days ago at this clock) is past; then the CAs.
		if want := []reason.Code{reason.CRLExpired, reason.CAExpiring, reason.CAExpiring}; !slices.Equal(got, want) || es[2].At.Before(es[1].At) {
			t.Fatalf("Expiries = %+v, want %v, earliest first", es, want)
		}
	})
}

func TestMetrics_CAExpiry(t *testing.T) {
	rca, cca := pkitest.NewCA(t, "replication"), pkitest.NewCA(t, "clients")
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m1 := rca.Issue(pkitest.Spec{CN: "m1", NotAfter: time.Now().Add(365 * day)})
	sourceFor(t, PortMember, m1, rca.CertPath, "", nil, func(c *Config) { c.Metrics = metrics })
	sourceFor(t, PortClient, m1, cca.CertPath, "", nil, func(c *Config) { c.Metrics = metrics })
	got := map[string]float64{}
	for _, m := range families(t, reg, "mirrorkv_tls_ca_expiry_seconds") {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		got[labels["port"]+" "+labels["subject"]] = m.GetGauge().GetValue()
	}
	for key, ca := range map[string]*pkitest.CA{"member CN=replication,O=mirrorkv test": rca, "client CN=clients,O=mirrorkv test": cca} {
		want := time.Until(ca.Cert.NotAfter).Seconds()
		if left, ok := got[key]; !ok || math.Abs(left-want) > 60 {
			t.Errorf("mirrorkv_tls_ca_expiry_seconds{%s} = %v (present %v), want about %v; all: %v", key, left, ok, want, got)
		}
	}
}
