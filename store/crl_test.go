package store

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/reason"
)

// testCA signs CRLs for the store's tests; the store checks numbers, never signatures.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign,
		SubjectKeyId: []byte(name),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// crl is a DER CRL numbered n that revokes serials.
func (ca *testCA) crl(tb testing.TB, n int64, serials ...int64) []byte {
	tb.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(24 * time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func setCRL(port string, der []byte) Command { return Command{Op: OpSetCRL, Key: port, Value: der} }

// numbersOf renders CRLs as PORT:NUMBER for comparisons.
func numbersOf(tb testing.TB, s *Store) []string {
	tb.Helper()
	crls, err := s.CRLs()
	if err != nil {
		tb.Fatalf("CRLs() = %v", err)
	}
	var out []string
	for _, c := range crls {
		out = append(out, c.Port+":"+c.Number)
	}
	return out
}

func TestStore_SetCRL(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			var notified atomic.Int32
			opts := mode.opts
			opts.OnCRL = func() { notified.Add(1) }
			s := openStore(t, opts)
			member, client := newTestCA(t, "replication"), newTestCA(t, "clients")
			mustApply(t, s, setCRL(CRLPortMember, member.crl(t, 2, 10)), setCRL(CRLPortClient, client.crl(t, 5)))
			if n := notified.Load(); n == 0 {
				t.Fatal("OnCRL was not called after set-crl commands")
			}
			if got, want := numbersOf(t, s), []string{"client:5", "member:2"}; !slices.Equal(got, want) {
				t.Fatalf("CRLs = %v, want %v", got, want)
			}
			t.Run("older refused", func(t *testing.T) {
				res := s.Apply(s.AppliedIndex()+1, EncodeCommand(setCRL(CRLPortMember, member.crl(t, 1))))
				if reason.Of(res.Err, reason.OK) != reason.CRLOlder {
					t.Fatalf("set an older CRL: %v, want reason crl-older", res.Err)
				}
				if got, want := numbersOf(t, s), []string{"client:5", "member:2"}; !slices.Equal(got, want) {
					t.Fatalf("CRLs after the refusal = %v, want %v", got, want)
				}
			})
			t.Run("same number and newer taken", func(t *testing.T) {
				mustApply(t, s, setCRL(CRLPortMember, member.crl(t, 2, 10)), setCRL(CRLPortMember, member.crl(t, 3, 10, 11)))
				if got, want := numbersOf(t, s), []string{"client:5", "member:3"}; !slices.Equal(got, want) {
					t.Fatalf("CRLs = %v, want %v", got, want)
				}
			})
			t.Run("another CA of the same port", func(t *testing.T) {
				mustApply(t, s, setCRL(CRLPortMember, newTestCA(t, "replication 2").crl(t, 1)))
				if got := numbersOf(t, s); len(got) != 3 {
					t.Fatalf("CRLs = %v, want one per CA", got)
				}
			})
			t.Run("garbage", func(t *testing.T) {
				res := s.Apply(s.AppliedIndex()+1, EncodeCommand(setCRL(CRLPortClient, []byte("not a CRL"))))
				if !errors.Is(res.Err, ErrBadCommand) {
					t.Fatalf("set a CRL that does not parse: %v, want ErrBadCommand", res.Err)
				}
			})
			t.Run("survives a restart", func(t *testing.T) {
				before := numbersOf(t, s)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				again := openAt(t, s.path, Options{NoFsync: true})
				if got := numbersOf(t, again); !slices.Equal(got, before) {
					t.Fatalf("CRLs after reopening = %v, want %v", got, before)
				}
			})
		})
	}
}

// A snapshot carries the CRLs, and restoring one tells OnCRL.
func TestStore_CRLSnapshot(t *testing.T) {
	src := openStore(t, Options{})
	ca := newTestCA(t, "clients")
	mustApply(t, src, put("a", "1"), setMember("m1", "x:1"), setCRL(CRLPortClient, ca.crl(t, 4, 7)))
	b := snapshotBytes(t, src)
	var notified atomic.Int32
	dst := openStore(t, Options{OnCRL: func() { notified.Add(1) }})
	if err := dst.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if notified.Load() == 0 {
		t.Fatal("OnCRL was not called after a restore")
	}
	if got, want := numbersOf(t, dst), []string{"client:4"}; !slices.Equal(got, want) {
		t.Fatalf("CRLs after restore = %v, want %v", got, want)
	}
	if again := snapshotBytes(t, dst); !bytes.Equal(again, b) {
		t.Fatal("a snapshot of the restored store differs from the one restored")
	}
	crl := func(js string) []byte { return appendField([]byte{recCRL}, js) }
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not JSON", snapshotOf(metaRec(1, 1), crl(`{`)), "CRL record"},
		{"no port", snapshotOf(metaRec(1, 1), crl(`{"port":"x","issuer":"i","der":"AA=="}`)), `port "x"`},
		{"no body", snapshotOf(metaRec(1, 1), crl(`{"port":"client","issuer":"i"}`)), "without an issuer or a body"},
		{"no number", snapshotOf(metaRec(1, 1), crl(`{"port":"client","issuer":"i","der":"AA=="}`)), "want a decimal number"},
		{"out of order", snapshotOf(metaRec(1, 1), crl(`{"port":"member","issuer":"i","number":"1","der":"AA=="}`), crl(`{"port":"client","issuer":"i","number":"1","der":"AA=="}`)), "is not after"},
		{"member after CRLs", snapshotOf(metaRec(1, 1), crl(`{"port":"member","issuer":"i","number":"1","der":"AA=="}`), memberRec(`{"name":"m"}`)), "member record after the CRL records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, Options{})
			if err := s.Restore(bytes.NewReader(tc.in)); !errors.Is(err, ErrBadSnapshot) || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot mentioning %q", err, tc.want)
			}
		})
	}
}

// TestSchema_CRLRecord plants a CRL record as bbolt held it, opens the file (which verifies
// every record) and reads it back; and checks that applying the same CRL today stores the
// same bytes. TestSchema_Command's set-crl case pins the command.
func TestSchema_CRLRecord(t *testing.T) {
	b := golden(t, "crl-record.bin", func() []byte { return storedCRL(t, newTestCA(t, "golden client CA").crl(t, 7, 3, 4)) })
	c, err := decodeCRL(b[4:])
	if err != nil {
		t.Fatalf("decode the golden CRL record: %v", err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	plant(t, path, bucketCRLs, c.key(), b)
	s = openAt(t, path, Options{NoFsync: true})
	crls, err := s.CRLs()
	if err != nil || len(crls) != 1 {
		t.Fatalf("CRLs() = %v, %v; want the golden one", crls, err)
	}
	got := crls[0]
	rl, err := x509.ParseRevocationList(got.DER)
	if err != nil {
		t.Fatalf("the golden record's CRL does not parse: %v", err)
	}
	if got.Port != CRLPortClient || got.Number != "7" || got.Issuer != pki.CRLIssuerID(rl) || len(rl.RevokedCertificateEntries) != 2 {
		t.Errorf("golden CRL = port %q number %q issuer %q with %d entries; want client, 7, its issuer ID, 2",
			got.Port, got.Number, got.Issuer, len(rl.RevokedCertificateEntries))
	}
	if rec := storedCRL(t, got.DER); !bytes.Equal(rec, b) {
		t.Errorf("stored CRL record =\n %x\nwant the golden bytes\n %x", rec, b)
	}
}

// storedCRL applies der as the client port's CRL to a new store and returns its record as
// bbolt holds it.
func storedCRL(tb testing.TB, der []byte) []byte {
	tb.Helper()
	s := openStore(tb, Options{})
	mustApply(tb, s, setCRL(CRLPortClient, der))
	var rec []byte
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketCRLs)).ForEach(func(_, v []byte) error {
			rec = bytes.Clone(v)
			return nil
		})
	})
	if err != nil || rec == nil {
		tb.Fatalf("read CRL record: %v, %d bytes", err, len(rec))
	}
	return rec
}

// TestSchema_SetCRLCommand decodes a set-crl command written by commandVersion 1 and checks
// that today's encoder writes the same bytes for it.
func TestSchema_SetCRLCommand(t *testing.T) {
	b := golden(t, "command-v1-set-crl.bin", func() []byte {
		return EncodeCommand(setCRL(CRLPortMember, newTestCA(t, "golden replication CA").crl(t, 7, 9)))
	})
	got, err := DecodeCommand(b)
	if err != nil {
		t.Fatalf("DecodeCommand(%x) = %v", b, err)
	}
	rl, err := x509.ParseRevocationList(got.Value)
	if got.Op != OpSetCRL || got.Key != CRLPortMember || err != nil || pki.CRLNumber(rl).Int64() != 7 {
		t.Fatalf("DecodeCommand = op %d key %q, CRL %v; want set-crl for the member port with CRL number 7", got.Op, got.Key, err)
	}
	if enc := EncodeCommand(got); !bytes.Equal(enc, b) {
		t.Errorf("EncodeCommand(decoded) =\n %x\nwant the bytes of version 1\n %x", enc, b)
	}
}
