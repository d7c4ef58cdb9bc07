package pki

import "encoding/asn1"

// Limits on the key-derivation cost an encrypted key file may ask for. The file says how
// much work decrypting it takes; without a limit a crafted file makes 'cert lint --key' or
// OpenCA spin or allocate for minutes. openssl's defaults are far below these.
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptN          = 1 << 20
	maxScryptR          = 32
	maxScryptP          = 16
)

type kdfAlgorithm struct {
	Algorithm asn1.ObjectIdentifier
	Params    asn1.RawValue `asn1:"optional"`
}

// checkKDFCost looks at the PBES2 parameters of an EncryptedPrivateKeyInfo before anything
// derives a key from them. Structures it cannot read are left to the decoder to refuse.
func checkKDFCost(der []byte) error {
	var info struct {
		Algorithm kdfAlgorithm
		Data      []byte
	}
	var pbes2 struct{ KDF, Cipher kdfAlgorithm }
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil
	}
	if _, err := asn1.Unmarshal(info.Algorithm.Params.FullBytes, &pbes2); err != nil {
		return nil
	}
	params := pbes2.KDF.Params.FullBytes
	switch {
	case pbes2.KDF.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}):
		var p struct {
			Salt []byte
			Iter int
		}
		if _, err := asn1.Unmarshal(params, &p); err == nil && (p.Iter < 0 || p.Iter > maxPBKDF2Iterations) {
			return errKDFCost
		}
	case pbes2.KDF.Algorithm.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}):
		var p struct {
			Salt    []byte
			N, R, P int
		}
		if _, err := asn1.Unmarshal(params, &p); err == nil && (p.N > maxScryptN || p.R > maxScryptR || p.P > maxScryptP) {
			return errKDFCost
		}
	}
	return nil
}
