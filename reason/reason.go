// Package reason holds mirrorkv's documented reason codes: one number and one text for every
// cause of a refused connection, a refused member or an unhealthy state. The same codes appear
// in handshake errors, the status API, `mirrorkv probe`, the logs and the metrics, so that an
// operator can look a code up once (docs/reasons.md) whatever printed it.
package reason

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Code is a documented reason code. Codes are stable: scripts match on them.
type Code int

// Codes 0-99 describe a healthy state, 100-199 a certificate or TLS cause, 200-299 a
// cluster cause, 300-399 a storage cause, 400-499 a request the API refuses.
const (
	OK Code = 0

	UnknownCA              Code = 101
	CertExpired            Code = 102
	CertNotYetValid        Code = 103
	Revoked                Code = 104
	MissingClientAuth      Code = 105
	MissingServerAuth      Code = 106
	DNNotAuthorised        Code = 107
	ClientCertOnMemberPort Code = 108
	NoCertificate          Code = 109
	ProtocolTooOld         Code = 110
	Plaintext              Code = 111
	KeyMismatch            Code = 112
	WrongMember            Code = 113
	BadKeyUsage            Code = 114
	HandshakeTimeout       Code = 115
	CRLInvalid             Code = 116
	NameMismatch           Code = 117
	HandshakeFailed        Code = 118
	BadCredentials         Code = 119
	PublicCA               Code = 120
	SharedCA               Code = 121
	RefusedByPeer          Code = 122
	NoCommonCipher         Code = 123
	ALPNMismatch           Code = 124
	NoTLSOffered           Code = 150
	WrongGroup             Code = 125
	NoAccess               Code = 126
	CRLExpired             Code = 127
	CRLExpiring            Code = 128
	KeyFileMode            Code = 129
	JoinPinMismatch        Code = 130
	HandshakeLimit         Code = 131
	IdentityMismatch       Code = 132
	CertExpiring           Code = 133
	CAExpiring             Code = 134
	CAExpired              Code = 135
	CRLOlder               Code = 140
	CRLUnknownSigner       Code = 141
	BadTLSPush             Code = 160
	NoPendingKey           Code = 161
	PendingKeyMismatch     Code = 162
	TrustRefused           Code = 163
	RotationBlocked        Code = 164
	CANotEndorsed          Code = 165

	CatchingUp     Code = 201
	NoPrimary      Code = 202
	NotMember      Code = 203
	Unreachable    Code = 204
	NotPrimary     Code = 205
	OtherCluster   Code = 206
	Shutdown       Code = 207
	Timeout        Code = 208
	LeadershipLost Code = 209
	NotAllowed     Code = 210
	Busy           Code = 212

	PreferredUnavailable Code = 213
	PreferredPending     Code = 214
	PreferredNotFailover Code = 215
	MajorityReachable    Code = 216

	DiskFull    Code = 301
	Corrupt     Code = 302
	StorageFail Code = 303
	DirMode     Code = 304
	BadBackup   Code = 305

	WatchCompacted   Code = 410
	WatchTooMany     Code = 411
	WatchSlow        Code = 412
	WatchUnavailable Code = 413

	TxnTooManyOps Code = 401
	TxnTooLarge   Code = 402
	BadTxn        Code = 403

	LeaseNotFound Code = 420
	TooManyLeases Code = 421
	BadLeaseTTL   Code = 422
	BadLeaseID    Code = 423
	LeaseFull     Code = 424
)

type entry struct {
	name, text, fix string
}

var table = map[Code]entry{
	OK: {"ok", "no problem", ""},

	UnknownCA:              {"unknown-ca", "certificate not signed by a trusted CA", "issue the certificate from the replication CA (`mirrorkv ca issue`), or add its CA to the peer's CA bundle"},
	CertExpired:            {"cert-expired", "certificate expired", "renew it: `mirrorkv cert renew --cert CERT --key-out NEW.key --csr-out NEW.csr` where it is used, `mirrorkv ca sign --renew --csr NEW.csr` on the CA host (or `mirrorkv ca issue --renew` there), then move the new key and certificate into place; a running member reloads them without a restart"},
	CertNotYetValid:        {"cert-not-yet-valid", "certificate not yet valid", "check the clocks of both hosts, or wait until the certificate's NotBefore; one issued under a wrong clock is renewed like an expired one (`mirrorkv cert renew --cert CERT`)"},
	Revoked:                {"revoked", "certificate revoked", "issue a new certificate with `mirrorkv ca issue --renew`; a revoked one never comes back"},
	MissingClientAuth:      {"missing-client-auth", "certificate lacks the clientAuth extended key usage", "reissue it with `mirrorkv ca issue` (member certificates carry serverAuth and clientAuth)"},
	MissingServerAuth:      {"missing-server-auth", "certificate lacks the serverAuth extended key usage", "reissue it with `mirrorkv ca issue` (member certificates carry serverAuth and clientAuth)"},
	DNNotAuthorised:        {"dn-not-authorised", "certificate subject DN is not an authorised member", "authorise it on the primary with `mirrorkv member add NAME --addr HOST:PORT --dn DN`"},
	ClientCertOnMemberPort: {"client-cert-on-member-port", "a client certificate was presented on the member port", "use a member certificate for replication; client certificates belong on the client port"},
	NoCertificate:          {"no-certificate", "no certificate presented", "configure a certificate and key (--cert/--key); mutual TLS is required"},
	ProtocolTooOld:         {"protocol-too-old", "TLS version too old", "use TLS 1.3 (or 1.2 where the server allows it)"},
	Plaintext:              {"plaintext", "plaintext on a TLS port", "use https:// or TLS and a client certificate; mirrorkv never speaks plaintext"},
	KeyMismatch:            {"key-mismatch", "private key does not match the certificate", "use the key generated with this certificate (`mirrorkv cert lint --key` checks a pair)"},
	WrongMember:            {"wrong-member", "the peer is not the member expected at that address", "check the member address list (`mirrorkv member list`) and the certificate installed on that host"},
	BadKeyUsage:            {"bad-key-usage", "certificate key usage does not allow this use", "reissue it with `mirrorkv ca issue`; it sets digitalSignature (and keyEncipherment for RSA)"},
	HandshakeTimeout:       {"handshake-timeout", "TLS handshake timed out", "check the network path and that the peer speaks TLS on this port"},
	CRLInvalid:             {"crl-invalid", "CRL is unreadable, not signed by the CA, or past its next update", "regenerate it with `mirrorkv ca crl` and push it to the group with `--push` (or copy it to every member)"},
	NameMismatch:           {"name-mismatch", "server certificate does not cover the name dialled", "dial a name or IP that is in the certificate's SANs, or reissue it with --dns/--ip"},
	HandshakeFailed:        {"handshake-failed", "TLS handshake failed", "run `mirrorkv probe HOST:PORT` with the same credentials for details"},
	BadCredentials:         {"bad-credentials", "certificate, key or CA file unusable", "check that file with `mirrorkv cert lint`"},
	PublicCA:               {"public-ca", "replication CA is also trusted by the system", "use a dedicated private CA (`mirrorkv ca init`): any certificate a public or corporate CA signs would be accepted as a member"},
	SharedCA:               {"shared-ca", "the same CA signs member and client certificates", "use separate CAs for members and clients: make a client CA of its own with `mirrorkv ca init` and issue client certificates from it"},
	RefusedByPeer:          {"refused-by-peer", "the peer refused this certificate after checking it (not authorised, revoked, or wrong usage)", "the peer's log names the exact reason; run `mirrorkv probe HOST:PORT --cert F --key F --ca F`"},
	NoCommonCipher:         {"no-common-cipher", "no TLS version or cipher suite in common", "use TLS 1.3; with TLS 1.2 mirrorkv allows only ECDHE suites with AES-GCM or ChaCha20-Poly1305"},
	ALPNMismatch:           {"alpn-mismatch", "the peer speaks another protocol on this port", "dial the member port for replication and the client port for the HTTP API"},
	NoTLSOffered:           {"no-tls-offered", "the server does not offer TLS on this port", "enable TLS on the server and restart it (MariaDB: ssl_cert, ssl_key and ssl_ca in [mariadb], as `mirrorkv ca issue --profile mariadb` prints them)"},
	WrongGroup:             {"wrong-group", "member certificate carries no or another group's identity", "issue the member certificate for this group: `mirrorkv ca issue --group GROUP` (the group is serve's --group)"},
	NoAccess:               {"no-access", "client certificate carries no access level, or an unreadable one", "issue the client certificate with an access level: `mirrorkv ca issue --client --access readonly|readwrite|admin`"},
	CRLExpired:             {"crl-expired", "CRL is past its next update: the revocations it lists still apply, but newer ones cannot be known", "publish a fresh CRL to the group with `mirrorkv ca crl --push`, or copy crl.pem to every member; members use it without a restart"},
	CRLExpiring:            {"crl-expiring", "CRL reaches its next update soon", "publish a fresh CRL with `mirrorkv ca crl` before it expires"},
	KeyFileMode:            {"key-file-mode", "private key file is readable by other users", "restrict it to its owner: chmod 600 KEYFILE"},
	JoinPinMismatch:        {"join-pin-mismatch", "the member at the join address is not the one pinned with --join-pin", "check the join address, and the fingerprint or DN printed by `mirrorkv member add`"},
	HandshakeLimit:         {"handshake-limit", "too many TLS handshakes in flight from this source or in total", "retry later; a client that opens many connections at once should reuse connections"},
	IdentityMismatch:       {"identity-mismatch", "a member claimed another member's name or address", "check that each member runs with its own certificate, --name and --member-advertise as recorded by `mirrorkv member add`"},
	CertExpiring:           {"cert-expiring", "certificate expires soon", "renew it: `mirrorkv cert renew --cert CERT --key-out NEW.key --csr-out NEW.csr` where it is used, `mirrorkv ca sign --renew --csr NEW.csr` on the CA host (or `mirrorkv ca issue --renew` there), then move the new key and certificate into place; members reload them without a restart"},
	CAExpiring:             {"ca-expiring", "a CA of a trust bundle expires soon: every certificate it signed stops working then", "make a new CA (`mirrorkv ca init`) and rotate to it before then: new CA into every bundle, new certificates, old CA out (docs/tls.md, \"Rotating the CA with no downtime\")"},
	CAExpired:              {"ca-expired", "a CA of a trust bundle has expired: no certificate it signed is accepted any more", "make a new CA (`mirrorkv ca init`), issue new certificates from it and put it in every bundle in place of the expired one (docs/tls.md, \"Rotating the CA with no downtime\")"},
	CRLOlder:               {"crl-older", "CRL number is lower than the one in force: an older CRL would lift newer revocations", "push a CRL made now: `mirrorkv ca crl --push` in the CA's directory; never push a saved copy"},
	CRLUnknownSigner:       {"crl-unknown-signer", "CRL is signed by neither the group's replication CA nor its client CA", "push the CRL of the CA that issued the certificate: run `mirrorkv ca revoke ... --push` or `mirrorkv ca crl --push` with --dir pointing at that CA"},
	BadTLSPush:             {"bad-tls-push", "pushed TLS material is not what the route takes: PEM CA certificates (and CRLs) for a trust bundle, PEM certificates with the leaf first for a certificate", "push the ca.crt and crl.pem of each CA to trust, or the certificate signed for the member's CSR, nothing else (`mirrorkv ca rotate apply` does)"},
	NoPendingKey:           {"no-pending-key", "no key on this member waits for a certificate", "ask the member for a new key and CSR first (POST /v1/tls/csr); `mirrorkv ca rotate apply` does both"},
	PendingKeyMismatch:     {"pending-key-mismatch", "certificate does not match the key this member made last", "sign the CSR the member handed out last; `mirrorkv ca rotate apply` asks for a fresh one"},
	TrustRefused:           {"trust-refused", "the member would cut itself off with the pushed material, so it keeps what it has", "the message names the cause; trust the CA of the certificate the member serves, and keep its subject and SANs (`mirrorkv ca rotate plan` shows both)"},
	RotationBlocked:        {"rotation-blocked", "a CA rotation phase would cut a member off, so it was not started", "bring the member named back (or remove it with `mirrorkv member remove`), then run `mirrorkv ca rotate apply` again"},
	CANotEndorsed:          {"ca-not-endorsed", "the push adds a CA that no CA this member trusts has endorsed: an admin certificate alone cannot add a CA", "add a CA with `mirrorkv ca rotate apply`, which endorses the new CA with the key of the CA in force; or copy the bundle into the member's DIR/tls by hand"},

	CatchingUp:           {"catching-up", "catching up with the primary", "wait; the sync percent shows progress"},
	NoPrimary:            {"no-primary", "no primary elected", "a majority of failover members must be up and connected; check `mirrorkv status` on each"},
	NotMember:            {"not-member", "not a member of the group", "add it on the primary with `mirrorkv member add`"},
	Unreachable:          {"unreachable", "member unreachable", "check the member process, its address and its certificate (`mirrorkv probe`)"},
	NotPrimary:           {"not-primary", "this member is not the primary", "send the request to the primary, or to any member that can forward it"},
	OtherCluster:         {"other-cluster", "data directory belongs to another group", "use an empty data directory for a new member, or the right --dir"},
	Shutdown:             {"shutdown", "member is shutting down", "retry on another member"},
	Timeout:              {"timeout", "operation timed out; its outcome is unknown", "read the key back before retrying a non-idempotent write"},
	LeadershipLost:       {"leadership-lost", "primary lost leadership before the operation committed; its outcome is unknown", "read the key back before retrying"},
	NotAllowed:           {"not-allowed", "a member certificate may carry replication and forwarded client writes only", "run membership and credential changes with an admin client certificate through the client port"},
	PreferredUnavailable: {"preferred-unavailable", "the preferred primary is unreachable or not in sync, so any failover member may lead", "bring the preferred member back and let it catch up (`mirrorkv status` shows its own reason); the role moves to it by itself once it is in sync; `mirrorkv member prefer --none` withdraws the preference"},
	PreferredPending:     {"preferred-pending", "the preferred primary is in sync; the primary hands it the role once the hold-down has passed", "wait up to --prefer-hold-down (doubled for each recent change of primary); if it stays, the primary's log says why the leadership transfer failed"},
	PreferredNotFailover: {"preferred-not-failover", "the preferred member is not a failover member, so it cannot become primary", "promote it with `mirrorkv member promote NAME`, or prefer a failover member with `mirrorkv member prefer NAME`"},
	MajorityReachable:    {"majority-reachable", "a majority of the failover members still answers, so a disaster recovery would make a second primary", "recover only when no majority of the failover members can be reached; while one can, restart the members that are down, or add and promote members on the primary"},
	Busy:                 {"busy", "too many large reads in flight on this member", "retry after the Retry-After delay, page with a smaller ?limit, or read through another member"},

	DiskFull:    {"disk-full", "no space left on the data disk", "free space on the data disk; the member resumes by itself"},
	Corrupt:     {"corrupt", "data on disk is damaged", "move the damaged file aside and restart the member with --join HOST:PORT --join-pin DN of a running member (`mirrorkv member list` shows both): it then learns the group's members and receives a snapshot"},
	StorageFail: {"storage-failure", "storage write failed", "check the data disk and the member log"},
	DirMode:     {"dir-mode", "data directory or file is open to other users", "restrict it to the member's user: chmod -R go-rwx DIR"},
	BadBackup:   {"bad-backup", "backup file damaged, truncated or not a mirrorkv backup", "use another copy of the backup, or take a new one from the group with `mirrorkv snapshot save FILE`; `mirrorkv snapshot inspect FILE` checks a file without restoring it"},

	WatchCompacted:   {"watch-compacted", "the watch starts before the oldest change this member still keeps", "list the prefix (GET /v1/kv/?prefix=P, or `mirrorkv kv list --prefix P`), then watch again from the listing's revision + 1; to keep more history raise --watch-history on every member"},
	WatchTooMany:     {"watch-too-many", "this member serves as many watchers as it allows", "watch through another member, share one watch of a wider prefix between consumers, or raise --max-watchers"},
	WatchSlow:        {"watch-slow", "the watcher did not read its events in time and was cut off", "read the stream faster (do less work per event, or hand events to a queue), then watch again from the last revision seen + 1; raise --watch-buffer on the member if bursts are expected"},
	WatchUnavailable: {"watch-unavailable", "this member cannot serve watches now", "retry on another member; the member's log has the cause"},

	TxnTooManyOps: {"txn-too-many-ops", "a transaction has more compares, or more writes in a branch, than the member allows", "split it into smaller transactions, or raise --max-txn-ops on every member"},
	TxnTooLarge:   {"txn-too-large", "a transaction's body is larger than the member allows", "keep large values out of transactions (a plain PUT takes up to --max-value-bytes), or split the transaction"},
	BadTxn:        {"bad-txn", "a transaction's body is not a valid transaction", "send JSON as docs/api.md describes: compare, then and else lists, keys not empty, each key written once per branch"},

	LeaseNotFound: {"lease-not-found", "the lease does not exist: never granted, revoked, or expired", "grant a new lease (`mirrorkv lease grant TTL`) and put the keys again with it; keep it alive more often than its TTL (`mirrorkv lease keepalive ID`)"},
	TooManyLeases: {"too-many-leases", "the group holds as many leases as the member allows", "revoke leases that are no longer used (`mirrorkv lease list`, `mirrorkv lease revoke ID`), share one lease among many keys, or raise --max-leases on every member"},
	BadLeaseTTL:   {"bad-lease-ttl", "a lease TTL is missing, not a whole number of seconds, or longer than 30 days", "send {\"ttl\": SECONDS} with 1 to 2592000 seconds, as docs/api.md describes"},
	BadLeaseID:    {"bad-lease-id", "a lease ID is not a positive decimal number", "use the id that POST /v1/leases (`mirrorkv lease grant`) returned"},
	LeaseFull:     {"lease-full", "the lease has as many keys attached as the group allows (10000)", "grant another lease for further keys, or detach keys by putting them without ?lease"},
}

// Name is the short stable identifier of the code, for logs and metric labels.
func (c Code) Name() string {
	if e, ok := table[c]; ok {
		return e.name
	}
	return fmt.Sprintf("code-%d", int(c))
}

// Text is the one-line description of the code.
func (c Code) Text() string {
	if e, ok := table[c]; ok {
		return e.text
	}
	return "unknown reason"
}

// Fix says what an operator should do about it; empty for OK.
func (c Code) Fix() string { return table[c].fix }

func (c Code) String() string { return fmt.Sprintf("%d %s", int(c), c.Text()) }

// Known reports whether c is a documented code.
func (c Code) Known() bool {
	_, ok := table[c]
	return ok
}

// All returns every documented code in ascending order, for docs and tests.
func All() []Code { return slices.Sorted(maps.Keys(table)) }

// Error is an error that carries a reason code. Packages wrap their causes in it so that
// every layer up to the status API and the CLI can report the code.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Code.Text()
	}
	return fmt.Sprintf("%s: %v", e.Code.Text(), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err annotated with code; nil stays nil.
func Wrap(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Of returns the code carried by err, def when err carries none, and OK for nil.
func Of(err error, def Code) Code {
	if err == nil {
		return OK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return def
}
