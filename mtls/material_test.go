//go:build !windows

package mtls

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/pkitest"
	"github.com/mirrorkv/mirrorkv/reason"
)

func TestNewSource_KeyFileMode(t *testing.T) {
	rca := pkitest.NewCA(t, "replication")
	good := rca.Member("m")
	for _, tc := range []struct {
		name string
		mode fs.FileMode
		ok   bool
	}{
		{"owner read-write", 0o600, true},
		{"owner read-only", 0o400, true},
		{"group readable", 0o640, false},
		{"world readable", 0o644, false},
		{"other readable only", 0o604, false},
		{"group writable", 0o620, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := pkitest.WriteFile(t, filepath.Join(t.TempDir(), "key.pem"), good.KeyPEM)
			if err := os.Chmod(key, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := NewSource(Config{Port: PortMember, CertFile: good.CertPath, KeyFile: key, CAFile: rca.CertPath,
				Policy: PolicyCA, SystemRoots: noSystemRoots}, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("key file mode %#o refused: %v", tc.mode, err)
				}
				return
			}
			ce, isCred := errors.AsType[*CredentialError](err)
			if !isCred || ce.Reason != reason.KeyFileMode || ce.File != key {
				t.Fatalf("key file mode %#o: err = %v, want a CredentialError with reason KeyFileMode naming %s", tc.mode, err, key)
			}
			msg := err.Error()
			for _, want := range []string{key, fmt.Sprintf("mode %#o", tc.mode), "chmod 600 " + key} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
	t.Run("reload keeps the old material", func(t *testing.T) {
		key := pkitest.WriteFile(t, filepath.Join(t.TempDir(), "key.pem"), good.KeyPEM)
		src := sourceFor(t, PortMember, &pkitest.Leaf{Cert: good.Cert, Key: good.Key, CertPath: good.CertPath, KeyPath: key}, rca.CertPath, "", nil)
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		before := src.mat.Load()
		err := src.Reload()
		if ce, ok := errors.AsType[*CredentialError](err); !ok || ce.Reason != reason.KeyFileMode {
			t.Fatalf("Reload with a world-readable key = %v, want a CredentialError with reason KeyFileMode", err)
		}
		if src.mat.Load() != before {
			t.Error("a refused reload swapped the material")
		}
	})
}
