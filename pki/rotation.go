package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// A CA rotation replaces the CA of a kind (member or client) on a live group in phases, each
// verified against the group before the next starts. Its state lives in the old CA's
// directory, so that a rotation interrupted between phases (a crash, Ctrl-C) resumes where it
// stopped:
//
//	DIR/rotation.json   the state: kind, which phase is verified, which is being applied
//	DIR/next/           the new CA, a CA directory like any other, until the rotation ends
//	DIR/rotation/       the bundles pushed to members, for finishing a member by hand
//	DIR/retired/SERIAL/ the old CA's files once the rotation has ended; DIR is the new CA
const (
	RotationFile     = "rotation.json"
	RotationNextDir  = "next"
	RotationFilesDir = "rotation"
	RetiredDir       = "retired"
)

// Phase is a step of a CA rotation.
type Phase string

// Phases, in order. A client CA rotation has no leaves phase: the client certificates are the
// clients', reissued by their owners between trust-both and withdraw.
const (
	PhaseNone      Phase = ""
	PhaseNewCA     Phase = "new-ca"     // the new CA is made beside the old
	PhaseTrustBoth Phase = "trust-both" // every member trusts the old and the new CA
	PhaseLeaves    Phase = "leaves"     // every member serves a certificate of the new CA
	PhaseWithdraw  Phase = "withdraw"   // every member trusts the new CA only
)

// Phases returns the phases of a rotation of kind k, in order.
func Phases(k Kind) []Phase {
	if k == KindClient {
		return []Phase{PhaseNewCA, PhaseTrustBoth, PhaseWithdraw}
	}
	return []Phase{PhaseNewCA, PhaseTrustBoth, PhaseLeaves, PhaseWithdraw}
}

// Rotation is the state of one CA rotation.
type Rotation struct {
	Kind Kind `json:"-"`
	// KindName is Kind as written in rotation.json.
	KindName string `json:"kind"`
	// Verified is the last phase verified against the live group; Applying the phase
	// started after it and not verified yet (a crash or refusal left it there).
	Verified Phase     `json:"verified"`
	Applying Phase     `json:"applying,omitempty"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`

	dir string
}

// NewRotation starts the state of a rotation of kind k in the CA directory dir; nothing is
// written until Save.
func NewRotation(dir string, k Kind, now time.Time) *Rotation {
	return &Rotation{Kind: k, KindName: k.String(), Started: now, Updated: now, dir: dir}
}

// LoadRotation reads the rotation in progress in dir; ErrNoRotation when there is none.
func LoadRotation(dir string, k Kind) (*Rotation, error) {
	path := filepath.Join(dir, RotationFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoRotation)
	}
	if err != nil {
		return nil, fmt.Errorf("read rotation state: %w", err)
	}
	r := &Rotation{dir: dir}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("read rotation state %s: %w; restore it from a backup, or compare it with 'mirrorkv ca rotate plan'", path, err)
	}
	if r.Kind, err = ParseKind(r.KindName); err != nil {
		return nil, fmt.Errorf("read rotation state %s: %w", path, err)
	}
	if r.Kind != k {
		return nil, fmt.Errorf("%s holds a %s CA rotation: %w", dir, r.Kind, ErrRotationKind)
	}
	if !r.known(r.Verified) || !r.known(r.Applying) {
		return nil, fmt.Errorf("read rotation state %s: unknown phase %q or %q", path, r.Verified, r.Applying)
	}
	return r, nil
}

func (r *Rotation) known(p Phase) bool { return p == PhaseNone || slices.Contains(Phases(r.Kind), p) }

// Save writes the state atomically.
func (r *Rotation) Save(now time.Time) error {
	r.Updated = now
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode rotation state: %w", err)
	}
	return writeFileAtomic(filepath.Join(r.dir, RotationFile), append(data, '\n'), modeSecret)
}

// Next is the phase to apply next: the one being applied, if any, else the one after the
// last verified; PhaseNone once every phase is verified.
func (r *Rotation) Next() Phase {
	if r.Applying != PhaseNone {
		return r.Applying
	}
	ps := Phases(r.Kind)
	i := slices.Index(ps, r.Verified) + 1
	if i >= len(ps) {
		return PhaseNone
	}
	return ps[i]
}

// Done reports whether every phase is verified.
func (r *Rotation) Done() bool { return r.Next() == PhaseNone }

// Begin records that phase p, which must be Next, is being applied.
func (r *Rotation) Begin(p Phase) error {
	next := r.Next()
	switch {
	case next == PhaseNone:
		return ErrRotationDone
	case p != next:
		return fmt.Errorf("begin phase %s: the next phase is %s", p, next)
	}
	r.Applying = p
	return nil
}

// Verify records that phase p, being applied, was verified against the group.
func (r *Rotation) Verify(p Phase) error {
	if r.Applying != p {
		return fmt.Errorf("verify phase %s: the phase being applied is %q", p, r.Applying)
	}
	r.Verified, r.Applying = p, PhaseNone
	return nil
}

// AbortTo is the phase an abort returns the group to, given whether any member already
// serves a certificate from the new CA: PhaseNone (the old CA alone, the new CA retired)
// while no member does, the leaves phase (old and new CA trusted) when the withdrawal was
// under way, and ErrAbortTooLate otherwise.
func (r *Rotation) AbortTo(leavesMoved bool) (Phase, error) {
	switch {
	case r.Applying == PhaseNone && r.Verified == PhaseNone:
		return PhaseNone, fmt.Errorf("abort: nothing applied yet: %w", ErrNoRotation)
	case r.Applying == PhaseWithdraw && r.Kind == KindMember:
		return PhaseLeaves, nil
	case r.Applying == PhaseWithdraw:
		return PhaseTrustBoth, nil
	case r.Kind == KindClient && r.Verified == PhaseWithdraw:
		return PhaseNone, ErrAbortTooLate
	case leavesMoved || r.Verified == PhaseLeaves || r.Verified == PhaseWithdraw:
		return PhaseNone, ErrAbortTooLate
	}
	return PhaseNone, nil
}

// Rolled records that the group was returned to phase p by an abort.
func (r *Rotation) Rolled(p Phase) { r.Verified, r.Applying = p, PhaseNone }

// Remove deletes the state: the rotation ended or was aborted back to its start.
func (r *Rotation) Remove() error {
	if err := os.Remove(filepath.Join(r.dir, RotationFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove rotation state: %w", err)
	}
	return nil
}

// NextCADir is where the new CA of the rotation in dir lives until the rotation ends.
func NextCADir(dir string) string { return filepath.Join(dir, RotationNextDir) }

// RotatedCAName is the subject CN for the CA that replaces one named old: the old name with
// the date of the rotation, so that the two CAs of a bundle are told apart by name (a CRL
// names its issuer by DN).
func RotatedCAName(old string, now time.Time) string {
	base := dateSuffix.ReplaceAllString(old, "")
	return base + " " + now.UTC().Format("2006-01-02 15:04")
}

var dateSuffix = regexp.MustCompile(` \d{4}-\d{2}-\d{2}( \d{2}:\d{2})?$`)

// caFiles are the files of a CA directory that make the CA.
var caFiles = []string{CACertFile, CAKeyFile, CRLFile, IndexFile}

// FinishRotation makes the new CA in dir/next the CA of dir and moves the old CA's files to
// dir/retired/SERIAL. Each step is a rename that a repeated call skips once done, so that a
// crash in between is finished by calling it again.
func FinishRotation(dir string, oldSerial string) error {
	retired := filepath.Join(dir, RetiredDir, oldSerial)
	next := NextCADir(dir)
	if exists(filepath.Join(next, CACertFile)) {
		if err := os.MkdirAll(retired, 0o700); err != nil {
			return fmt.Errorf("finish rotation: %w", err)
		}
		for _, f := range caFiles {
			if exists(filepath.Join(dir, f)) && !exists(filepath.Join(retired, f)) {
				if err := os.Rename(filepath.Join(dir, f), filepath.Join(retired, f)); err != nil {
					return fmt.Errorf("finish rotation: retire %s: %w", f, err)
				}
			}
		}
	}
	for _, f := range caFiles {
		if exists(filepath.Join(next, f)) {
			if err := os.Rename(filepath.Join(next, f), filepath.Join(dir, f)); err != nil {
				return fmt.Errorf("finish rotation: install %s: %w", f, err)
			}
		}
	}
	if err := os.RemoveAll(next); err != nil {
		return fmt.Errorf("finish rotation: %w", err)
	}
	if err := syncDirs([]fileSpec{{path: filepath.Join(dir, CACertFile)}}); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dir, RotationFile))
}

// AbandonRotation moves the new CA of an aborted rotation to dir/retired/aborted-TIME, so
// that nothing it signed is mistaken for the group's CA, and removes the state.
func AbandonRotation(dir string, now time.Time) error {
	next := NextCADir(dir)
	if exists(next) {
		if err := os.MkdirAll(filepath.Join(dir, RetiredDir), 0o700); err != nil {
			return fmt.Errorf("abandon rotation: %w", err)
		}
		dst := filepath.Join(dir, RetiredDir, "aborted-"+now.UTC().Format("20060102T150405Z"))
		if err := os.Rename(next, dst); err != nil {
			return fmt.Errorf("abandon rotation: %w", err)
		}
	}
	if err := os.Remove(filepath.Join(dir, RotationFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abandon rotation: %w", err)
	}
	return nil
}

// WriteRotationFile writes one bundle of the rotation in dir (dir/rotation/NAME, mode 0644:
// certificates and CRLs are public) and returns its path.
func WriteRotationFile(dir, name string, data []byte) (string, error) {
	d := filepath.Join(dir, RotationFilesDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("write rotation file: %w", err)
	}
	path := filepath.Join(d, name)
	return path, writeFileAtomic(path, data, modePublic)
}
