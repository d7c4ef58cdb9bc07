package pki

import (
	"crypto"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"

	"github.com/youmark/pkcs8"
)

// scryptParamsOf returns the scrypt parameters of an encrypted PEM key, failing the test
// when its KDF is not scrypt.
func scryptParamsOf(t *testing.T, keyPEM []byte) (n, r, p int) {
	t.Helper()
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("not an encrypted PEM key:\n%s", keyPEM)
	}
	var info struct {
		Algorithm kdfAlgorithm
		Data      []byte
	}
	var pbes2 struct{ KDF, Cipher kdfAlgorithm }
	var params struct {
		Salt    []byte
		N, R, P int
	}
	_, err1 := asn1.Unmarshal(b.Bytes, &info)
	_, err2 := asn1.Unmarshal(info.Algorithm.Params.FullBytes, &pbes2)
	_, err3 := asn1.Unmarshal(pbes2.KDF.Params.FullBytes, &params)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if !pbes2.KDF.Algorithm.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}) {
		t.Fatalf("KDF %v, want scrypt", pbes2.KDF.Algorithm)
	}
	if len(params.Salt) < 16 {
		t.Fatalf("salt of %d bytes, want at least 16", len(params.Salt))
	}
	return params.N, params.R, params.P
}

func TestMarshalPrivateKey_Scrypt(t *testing.T) {
	k := mustKey(t)
	p, err := MarshalPrivateKey(k, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	n, r, par := scryptParamsOf(t, p)
	if n != scryptN || r != scryptR || par != scryptP {
		t.Fatalf("scrypt N=%d r=%d p=%d, want %d, %d, %d", n, r, par, scryptN, scryptR, scryptP)
	}
	// As much work per guess as N=2^17, r=8, p=1; no more memory than openssl 3 allows a
	// PKCS#8 key (32 MiB); within the cost that ParsePrivateKey accepts.
	if n*r*par < 1<<17*8 || 128*r*(n+2) > 32<<20 || n > maxScryptN || r > maxScryptR || par > maxScryptP {
		t.Fatalf("scrypt N=%d r=%d p=%d: below the work asked, above openssl's memory limit or above our caps", n, r, par)
	}
	got, err := ParsePrivateKey(p, []byte("s3cret"))
	if err != nil || !publicKeyEqual(got.Public(), k.Public()) {
		t.Fatalf("read back: %v", err)
	}
	if _, err := ParsePrivateKey(p, []byte("wrong")); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrPassphrase", err)
	}
}

// pbkdf2KeyPEM encrypts k the way mirrorkv did before scrypt: PBKDF2-SHA256, 200 000 rounds.
func pbkdf2KeyPEM(t *testing.T, k crypto.Signer, pass []byte) []byte {
	t.Helper()
	der, err := pkcs8.MarshalPrivateKey(k, pass, &pkcs8.Opts{Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 200_000, HMACHash: crypto.SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

// TestOpenCA_OldKeyFormats: CA keys written by earlier versions, PBKDF2-encrypted or in the
// clear, keep opening.
func TestOpenCA_OldKeyFormats(t *testing.T) {
	pass := []byte("s3cret")
	for _, tc := range []struct {
		name string
		key  func(t *testing.T, k crypto.Signer) []byte
		pass []byte
	}{
		{"PBKDF2", func(t *testing.T, k crypto.Signer) []byte { return pbkdf2KeyPEM(t, k, pass) }, pass},
		{"unencrypted", func(t *testing.T, k crypto.Signer) []byte { return keyPEM(t, k) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newTestCA(t, CAOptions{})
			if err := writeFileAtomic(filepath.Join(ca.Dir(), CAKeyFile), tc.key(t, ca.key), modeSecret); err != nil {
				t.Fatal(err)
			}
			opened, err := OpenCAWith(ca.Dir(), OpenOptions{Passphrase: tc.pass, Clock: fixedClock(t0)})
			if err != nil {
				t.Fatalf("OpenCA: %v", err)
			}
			if _, err := opened.Issue(IssueRequest{Name: "m1"}); err != nil {
				t.Fatalf("issue with the reopened CA: %v", err)
			}
			if tc.pass != nil {
				if _, err := OpenCA(ca.Dir(), []byte("wrong")); !errors.Is(err, ErrPassphrase) {
					t.Fatalf("wrong passphrase: %v, want ErrPassphrase", err)
				}
			}
		})
	}
}

func TestInitCA_KeyIsScrypt(t *testing.T) {
	ca := newTestCA(t, CAOptions{Passphrase: []byte("s3cret")})
	n, r, p := scryptParamsOf(t, readFile(t, filepath.Join(ca.Dir(), CAKeyFile)))
	if n != scryptN || r != scryptR || p != scryptP {
		t.Fatalf("ca.key scrypt N=%d r=%d p=%d", n, r, p)
	}
}
