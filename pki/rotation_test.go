package pki

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var rotationNow = time.Date(2026, 12, 4, 17, 0, 0, 0, time.UTC)

// walk begins and verifies phases in order until upTo is verified.
func walk(t *testing.T, r *Rotation, upTo Phase) {
	t.Helper()
	for r.Verified != upTo {
		p := r.Next()
		if err := r.Begin(p); err != nil {
			t.Fatalf("begin %s: %v", p, err)
		}
		if err := r.Verify(p); err != nil {
			t.Fatalf("verify %s: %v", p, err)
		}
	}
}

func TestRotation_Phases(t *testing.T) {
	for _, tt := range []struct {
		kind Kind
		want []Phase
	}{
		{KindMember, []Phase{PhaseNewCA, PhaseTrustBoth, PhaseLeaves, PhaseWithdraw}},
		{KindClient, []Phase{PhaseNewCA, PhaseTrustBoth, PhaseWithdraw}},
	} {
		t.Run(tt.kind.String(), func(t *testing.T) {
			r := NewRotation(t.TempDir(), tt.kind, rotationNow)
			var got []Phase
			for !r.Done() {
				p := r.Next()
				got = append(got, p)
				if err := r.Begin(p); err != nil {
					t.Fatal(err)
				}
				if err := r.Verify(p); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("phases %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("phases %v, want %v", got, tt.want)
				}
			}
			if err := r.Begin(PhaseWithdraw); !errors.Is(err, ErrRotationDone) {
				t.Fatalf("begin after the last phase = %v, want ErrRotationDone", err)
			}
		})
	}
}

// A phase begun and saved but never verified (a crash, Ctrl-C, a refusal) is the next one
// again after a reload; a phase out of order is refused.
func TestRotation_Resume(t *testing.T) {
	dir := t.TempDir()
	r := NewRotation(dir, KindMember, rotationNow)
	walk(t, r, PhaseTrustBoth)
	if err := r.Begin(PhaseWithdraw); err == nil {
		t.Fatal("begin withdraw after trust-both: want a refusal, the leaves come first")
	}
	if err := r.Begin(PhaseLeaves); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(rotationNow); err != nil {
		t.Fatal(err)
	}
	// The process dies here.
	got, err := LoadRotation(dir, KindMember)
	if err != nil {
		t.Fatal(err)
	}
	if got.Next() != PhaseLeaves || got.Verified != PhaseTrustBoth {
		t.Fatalf("after reload: next %q, verified %q; want leaves, trust-both", got.Next(), got.Verified)
	}
	if err := got.Verify(PhaseWithdraw); err == nil {
		t.Fatal("verify a phase not being applied: want a refusal")
	}
	if _, err := LoadRotation(dir, KindClient); !errors.Is(err, ErrRotationKind) {
		t.Fatalf("load as a client rotation = %v, want ErrRotationKind", err)
	}
	if _, err := LoadRotation(t.TempDir(), KindMember); !errors.Is(err, ErrNoRotation) {
		t.Fatalf("load from an empty directory = %v, want ErrNoRotation", err)
	}
	if err := os.WriteFile(filepath.Join(dir, RotationFile), []byte(`{"kind":"member","verified":"sideways"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRotation(dir, KindMember); err == nil {
		t.Fatal("load a state with an unknown phase: want an error")
	}
}

func TestRotation_AbortTo(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		verified Phase
		applying Phase
		moved    bool
		want     Phase
		err      error
	}{
		{"nothing applied", KindMember, PhaseNone, PhaseNone, false, PhaseNone, ErrNoRotation},
		{"new CA being made", KindMember, PhaseNone, PhaseNewCA, false, PhaseNone, nil},
		{"trust being pushed", KindMember, PhaseNewCA, PhaseTrustBoth, false, PhaseNone, nil},
		{"both trusted", KindMember, PhaseTrustBoth, PhaseNone, false, PhaseNone, nil},
		{"leaves begun, none moved", KindMember, PhaseTrustBoth, PhaseLeaves, false, PhaseNone, nil},
		{"leaves begun, some moved", KindMember, PhaseTrustBoth, PhaseLeaves, true, PhaseNone, ErrAbortTooLate},
		{"leaves verified", KindMember, PhaseLeaves, PhaseNone, true, PhaseNone, ErrAbortTooLate},
		{"withdrawal under way", KindMember, PhaseLeaves, PhaseWithdraw, true, PhaseLeaves, nil},
		{"client: both trusted", KindClient, PhaseTrustBoth, PhaseNone, false, PhaseNone, nil},
		{"client: withdrawal under way", KindClient, PhaseTrustBoth, PhaseWithdraw, false, PhaseTrustBoth, nil},
		{"client: withdrawn", KindClient, PhaseWithdraw, PhaseNone, false, PhaseNone, ErrAbortTooLate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRotation(t.TempDir(), tt.kind, rotationNow)
			r.Verified, r.Applying = tt.verified, tt.applying
			got, err := r.AbortTo(tt.moved)
			if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
				t.Fatalf("AbortTo(%t) = %q, %v; want %q, %v", tt.moved, got, err, tt.want, tt.err)
			}
			if err == nil && got != PhaseNone {
				r.Rolled(got)
				if r.Next() != PhaseWithdraw {
					t.Fatalf("after rolling back to %s the next phase is %q, want withdraw again", got, r.Next())
				}
			}
		})
	}
}

// FinishRotation and AbandonRotation move whole CA directories; a repeated call after a
// crash finishes the job.
func TestFinishRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "members")
	old, err := InitCA(dir, CAOptions{Name: "old", Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(NextCADir(dir), CAOptions{Name: RotatedCAName("old", rotationNow), Unencrypted: true}); err != nil {
		t.Fatal(err)
	}
	if err := NewRotation(dir, KindMember, rotationNow).Save(rotationNow); err != nil {
		t.Fatal(err)
	}
	serial := old.Certificate().SerialNumber.Text(16)
	// A crash after the first rename: the old certificate is retired, nothing else moved.
	if err := os.MkdirAll(filepath.Join(dir, RetiredDir, serial), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, CACertFile), filepath.Join(dir, RetiredDir, serial, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if err := FinishRotation(dir, serial); err != nil {
		t.Fatal(err)
	}
	ca, err := OpenCA(dir, nil)
	if err != nil || ca.Certificate().Subject.CommonName != "old 2026-12-04 17:00" {
		t.Fatalf("CA of %s after the rotation: %v, %v; want the new one", dir, ca, err)
	}
	if _, err := OpenCA(filepath.Join(dir, RetiredDir, serial), nil); err != nil {
		t.Fatalf("the retired CA: %v", err)
	}
	if _, err := LoadRotation(dir, KindMember); !errors.Is(err, ErrNoRotation) {
		t.Fatalf("state after the end: %v, want none", err)
	}
	if got := RotatedCAName("old 2026-12-04 17:00", rotationNow.AddDate(1, 0, 0)); got != "old 2027-12-04 17:00" {
		t.Fatalf("RotatedCAName of a rotated CA = %q", got)
	}
}

func TestAbandonRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "clients")
	if _, err := InitCA(NextCADir(dir), CAOptions{Name: "next", Unencrypted: true}); err != nil {
		t.Fatal(err)
	}
	if err := NewRotation(dir, KindClient, rotationNow).Save(rotationNow); err != nil {
		t.Fatal(err)
	}
	if err := AbandonRotation(dir, rotationNow); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NextCADir(dir)); err == nil {
		t.Fatal("the new CA is still in next/")
	}
	if _, err := OpenCA(filepath.Join(dir, RetiredDir, "aborted-20261204T170000Z"), nil); err != nil {
		t.Fatalf("the abandoned CA: %v", err)
	}
}
