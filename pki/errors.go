package pki

import "errors"

// Sentinel errors. Callers match them with errors.Is; the wrapping message names the file or
// the certificate concerned and says what to do.
var (
	// ErrCAExists is returned by InitCA when the directory already holds a CA.
	ErrCAExists = errors.New("a CA already exists there; use another --dir, or keep using this one")
	// ErrNoPassphrase is returned by InitCA when it has no passphrase to encrypt ca.key with
	// and was not told to write it unencrypted.
	ErrNoPassphrase = errors.New("refusing to write the CA key unencrypted; give --passphrase-file FILE, or --insecure-no-passphrase to keep it in the clear")
	// ErrNotCA is returned by OpenCA when the directory does not hold a CA made by InitCA.
	ErrNotCA = errors.New("not a mirrorkv CA directory; point --dir at the directory given to 'mirrorkv ca init'")
	// ErrPassphrase is returned by ParsePrivateKey and OpenCA when the key is encrypted and the
	// passphrase is missing or wrong.
	ErrPassphrase = errors.New("wrong or missing passphrase; pass the CA key's passphrase with --passphrase-file")
	// ErrNotKey is returned by ParsePrivateKey when the input holds no private key.
	ErrNotKey = errors.New("no private key found; give the PEM key file written with the certificate")
	// ErrNoCertificate is returned by ParseCertificates when the input holds no certificate.
	ErrNoCertificate = errors.New("no certificate found; give a PEM or DER certificate file")
	// ErrNoCSR is returned by ParseCSR when the input holds no certificate request.
	ErrNoCSR = errors.New("no certificate request found; give the .csr file written by 'mirrorkv cert request'")
	// ErrNoCRL is returned by ParseCRL when the input holds no CRL.
	ErrNoCRL = errors.New("no CRL found; give the crl.pem written by 'mirrorkv ca crl'")
	// ErrSubjectExists is returned by Issue and Sign when a valid certificate for the same subject
	// exists and renewal was not asked for.
	ErrSubjectExists = errors.New("a valid certificate for this subject exists; add --renew to issue another, or revoke the old one first")
	// ErrSubjectIsCA is returned by Issue and Sign for a certificate whose subject is the CA's
	// own: it would look self-signed, and openssl refuses it.
	ErrSubjectIsCA = errors.New("that is the CA's own name: the certificate would look self-signed and openssl would refuse it; choose another --name")
	// ErrUnknownSerial is returned by Revoke for a serial this CA never issued.
	ErrUnknownSerial = errors.New("this CA issued no certificate with that serial; check it with 'mirrorkv cert inspect'")
	// ErrAlreadyRevoked is returned by Revoke for a certificate revoked before.
	ErrAlreadyRevoked = errors.New("certificate already revoked")
	// ErrKeyType is returned for a key type mirrorkv does not make or accept.
	ErrKeyType = errors.New("unsupported key type; use ecdsa-p256, ed25519, rsa-3072 or rsa-4096")
	// ErrWeakKey is returned by Sign for a request whose key is too weak to certify.
	ErrWeakKey = errors.New("key too weak; use ecdsa-p256, ed25519 or RSA of at least 2048 bits")
	// ErrEmptyDN is returned by CanonicalDN for an empty distinguished name.
	ErrEmptyDN = errors.New("empty distinguished name; give one such as CN=m1,O=Acme")
	// ErrBadDN is returned by CanonicalDN for text that is not a distinguished name.
	ErrBadDN = errors.New("malformed distinguished name; write it as CN=m1,O=Acme or /O=Acme/CN=m1")
	// ErrUnknownProfile is returned by ProfileByName for a name not in the profile table.
	ErrUnknownProfile = errors.New("unknown profile; 'mirrorkv ca profiles' lists them")
	// ErrNotDedicated is returned by Issue and Sign for a profile that needs a CA of its own
	// (VAST) when the CA already issued certificates for something else.
	ErrNotDedicated = errors.New("this CA already signs other certificates, and every certificate it signs would be accepted for replication; make a CA for this product alone with 'mirrorkv ca init --dir NEWDIR --name Replication-Root-CA'")
	// errKDFCost is returned by ParsePrivateKey for an encrypted key whose key derivation
	// costs too much to attempt.
	errKDFCost = errors.New("encrypted key asks for an unreasonable key-derivation cost; re-encrypt it with 'openssl pkcs8 -topk8 -v2 aes256'")
	// ErrUnknownAccess is returned for a client access other than admin, readwrite or readonly,
	// and for a certificate with more than one access URI or a malformed one.
	ErrUnknownAccess = errors.New("unknown access; use admin, readwrite or readonly")
	// ErrKeyFileMode is returned by CheckKeyFileMode for a private key file that its group or
	// other users may read, write or run.
	ErrKeyFileMode = errors.New("private key file is open to other users; restrict it to its owner with chmod 600")
	// ErrNoAccess is returned by AccessOf for a client certificate that carries no access URI:
	// such a certificate grants nothing.
	ErrNoAccess = errors.New("client certificate carries no access level; reissue it with 'mirrorkv ca issue --client --access admin|readwrite|readonly'")
)

// Sentinel errors of a CA rotation (rotation.go).
var (
	// ErrNoRotation is returned by LoadRotation when the CA directory holds no rotation.
	ErrNoRotation = errors.New("no CA rotation in progress here; start one with 'mirrorkv ca rotate apply'")
	// ErrRotationDone is returned by Rotation.Begin once every phase is verified.
	ErrRotationDone = errors.New("every phase of this rotation is verified; run 'mirrorkv ca rotate verify' to finish it")
	// ErrRotationKind is returned by LoadRotation when the rotation in the directory is of the
	// other kind of CA.
	ErrRotationKind = errors.New("a rotation of the other CA kind is in progress in this directory")
	// ErrAbortTooLate is returned by Rotation.AbortTo once members serve certificates from
	// the new CA: trusting the old CA alone would cut them off.
	ErrAbortTooLate = errors.New("members already serve certificates from the new CA, so the old CA alone cannot be trusted again; finish with 'mirrorkv ca rotate apply'")
)
