// Package wire holds the JSON types of mirrorkv's HTTP API. It is a leaf: the server side
// (api, cluster) and the client side (client, cli) both import it, and it imports nothing of
// mirrorkv's, so the two sides cannot drift apart.
package wire

import "time"

// Role is a member's role in the group, as the status API reports it.
type Role string

// Roles, after the IRIS and Amlen manuals: the primary takes writes, standbys are voting
// failover members in sync, async members follow without voting, and UNSYNC covers every
// member that is catching up or refused (its reason says which).
const (
	RolePrimary Role = "PRIMARY"
	RoleStandby Role = "STANDBY"
	RoleAsync   Role = "ASYNC"
	RoleUnsync  Role = "UNSYNC"
)

// Reason is a documented reason code with its text (package reason).
type Reason struct {
	Code int    `json:"code"`
	Text string `json:"text"`
}

// StatusVersion is the Version of every Status this release answers, as Amlen's
// HighAvailability status carries "v1".
const StatusVersion = "v1"

// HA service states of Status.Status, after Amlen's HighAvailability status: Active while
// the member takes part in the group's replication, Inactive while it is not in the group's
// configuration (not yet joined, or removed).
const (
	HAActive   = "Active"
	HAInactive = "Inactive"
)

// Status is the body of GET /v1/status: the view of the member that answered, and one entry
// per member of the group.
type Status struct {
	// Version, Status and Enabled are Amlen's: a script written for Amlen's HighAvailability
	// status finds them under the same meaning. Enabled is always true: a mirrorkv member
	// always replicates.
	Version      string         `json:"version"`
	Status       string         `json:"status"`
	Enabled      bool           `json:"enabled"`
	Group        string         `json:"group"`
	Node         string         `json:"node"`
	Role         Role           `json:"role"`
	PreviousRole Role           `json:"previousRole"`
	Primary      string         `json:"primary"`
	PrimarySince *time.Time     `json:"primarySince,omitempty"`
	ActiveNodes  int            `json:"activeNodes"`
	SyncNodes    int            `json:"syncNodes"`
	SyncPercent  float64        `json:"syncPercent"`
	Reason       Reason         `json:"reason"`
	AppliedIndex uint64         `json:"appliedIndex"`
	CommitIndex  uint64         `json:"commitIndex"`
	Members      []MemberStatus `json:"members"`
	// Preferred names the preferred primary (mirrorkv member prefer); empty: none.
	// PreferredReason says whether the preference is in force: 0 when the preferred member
	// is the primary, otherwise why not.
	Preferred       string  `json:"preferred,omitempty"`
	PreferredReason *Reason `json:"preferredReason,omitempty"`
	// Recovery is this member's last disaster recovery, if any (mirrorkv member recover).
	Recovery *Recovery `json:"recovery,omitempty"`
}

// Recovery is the last disaster recovery of the member that answered (mirrorkv member
// recover): it became the only voter of a new configuration with the data it had.
type Recovery struct {
	At   time.Time `json:"at"`
	From string    `json:"from"` // the member that became the primary of the new configuration
	// AppliedIndex and Revision are how far its store had come before the recovery; the
	// recovery then applied what its raft log held beyond them, up to LastIndex and
	// LastRevision. Every write the old group acknowledged with a revision above
	// LastRevision may be missing.
	AppliedIndex uint64 `json:"appliedIndex"`
	Revision     int64  `json:"revision"`
	LastIndex    uint64 `json:"lastIndex"`
	LastRevision int64  `json:"lastRevision"`
	// Removed lists the members whose authorisation the recovery withdrew: they are
	// refused until added again. Kept lists the async members kept as non-voters.
	Removed []string `json:"removed"`
	Kept    []string `json:"kept,omitempty"`
}

// MemberStatus is one member's entry in Status.
type MemberStatus struct {
	Name         string     `json:"name"`
	MemberAddr   string     `json:"memberAddr"`
	ClientURL    string     `json:"clientURL"`
	DN           string     `json:"dn"`
	Voter        bool       `json:"voter"`
	Role         Role       `json:"role"`
	LastContact  *time.Time `json:"lastContact,omitempty"`
	Lag          uint64     `json:"lag"`
	SyncPercent  float64    `json:"syncPercent"`
	CertNotAfter *time.Time `json:"certNotAfter,omitempty"`
	Reason       Reason     `json:"reason"`
	// Expiries lists what in the member's trust material runs out within 30 days or has run
	// out, earliest first; members of older releases report none.
	Expiries []Expiry `json:"expiries,omitempty"`
}

// Expiry is a deadline in a member's trust material that is 30, 7 or 1 day ahead or past:
// its own certificate, a CA of one of its trust bundles, or the next update of a CRL.
type Expiry struct {
	Port     string    `json:"port"`     // the port whose material it is: member or client
	Material string    `json:"material"` // leaf, ca or crl
	Subject  string    `json:"subject"`  // the certificate's subject DN; for a CRL, its issuer's
	At       time.Time `json:"at"`       // its NotAfter, or the CRL's next update
	Reason   Reason    `json:"reason"`   // cert-expiring, ca-expiring, crl-expired, ...
}

// Member is an authorised member as recorded in the group's replicated state; the body of
// POST /v1/members and an element of GET /v1/members.
type Member struct {
	Name       string `json:"name"`
	MemberAddr string `json:"memberAddr"`
	ClientURL  string `json:"clientURL,omitempty"`
	DN         string `json:"dn"`
	Async      bool   `json:"async,omitempty"`
}

// KV is one key in a listing (GET /v1/kv/?prefix=). Values are bytes; JSON carries them as
// base64.
type KV struct {
	Key      string `json:"key"`
	Value    []byte `json:"value"`
	Revision int64  `json:"revision"`
}

// List is the body of GET /v1/kv/?prefix=P&limit=N. More is true when the limit cut the
// listing; Next is then the key to pass as ?start= to continue.
type List struct {
	Revision int64  `json:"revision"`
	KVs      []KV   `json:"kvs"`
	More     bool   `json:"more"`
	Next     string `json:"next,omitempty"`
}

// Error is the body of every error response: what went wrong, its reason code, and what to
// do about it.
type Error struct {
	Error  string `json:"error"`
	Reason Reason `json:"reason"`
	Fix    string `json:"fix,omitempty"`
}

// Header names of the KV API.
const (
	// HeaderRevision carries the store's revision at which a read was served.
	HeaderRevision = "X-Mirrorkv-Revision"
	// HeaderStale is "true" on a response served from a member's own copy (?stale=true).
	HeaderStale = "X-Mirrorkv-Stale"
	// HeaderPrimary is the client URL of the primary, on a 503 not-primary answer to what
	// runs on the primary only (membership and leadership changes).
	HeaderPrimary = "X-Mirrorkv-Primary"
	// HeaderServedBy names the member that answered.
	HeaderServedBy = "X-Mirrorkv-Member"
	// HeaderGroup names the group, on a backup stream (GET /v1/backup).
	HeaderGroup = "X-Mirrorkv-Group"
)

// CRLPush is the body of POST /v1/crl: one CRL in PEM ("-----BEGIN X509 CRL-----"), as
// `mirrorkv ca crl` writes crl.pem. The member decides from its signature which port's CA
// issued it.
type CRLPush struct {
	CRL string `json:"crl"`
}

// CRLPushed is the answer to POST /v1/crl once the group has committed the CRL.
type CRLPushed struct {
	Port    string `json:"port"`    // "member" or "client": whose CA signed it
	Issuer  string `json:"issuer"`  // the issuing CA's subject
	Number  string `json:"number"`  // the CRL number, decimal
	Revoked int    `json:"revoked"` // how many certificates it lists
}

// Txn is the body of POST /v1/txn: when every compare holds, the writes of Then are applied,
// otherwise those of Else, atomically and at one new revision.
type Txn struct {
	Compare []Compare `json:"compare,omitempty"`
	Then    []TxnOp   `json:"then,omitempty"`
	Else    []TxnOp   `json:"else,omitempty"`
}

// Targets of a Compare.
const (
	TargetRevision = "revision" // the key's revision, 0 when it does not exist
	TargetValue    = "value"    // the key's value; a missing key matches no value
	TargetExists   = "exists"   // the key exists
	TargetAbsent   = "absent"   // the key does not exist
)

// Compare is one condition of a Txn. Op is "=" (the default), "!=", "<" or ">"; "<" and ">"
// apply to revisions only. A value is given as text in Value or as bytes in ValueBase64.
type Compare struct {
	Key         string `json:"key"`
	Target      string `json:"target"`
	Op          string `json:"op,omitempty"`
	Revision    int64  `json:"revision,omitempty"`
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
}

// Ops of a TxnOp.
const (
	OpPut    = "put"
	OpDelete = "delete"
)

// TxnOp is a write of a Txn: a put of Value (text) or ValueBase64 (bytes), or a delete. A
// put with Lease attaches the key to that lease; without, it detaches the key.
type TxnOp struct {
	Op          string `json:"op"`
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
	Lease       int64  `json:"lease,omitempty"`
}

// TxnResult is the answer to POST /v1/txn.
type TxnResult struct {
	Succeeded bool       `json:"succeeded"` // the compares held and Then ran; else Else ran
	Revision  int64      `json:"revision"`  // the store's revision after the transaction
	Results   []OpResult `json:"results"`   // one per write of the branch that ran
}

// OpResult is the outcome of one write of a Txn. Revision is the key's new revision, shared
// by all the writes of the transaction; a delete of a key that did not exist has Revision 0
// and Deleted false.
type OpResult struct {
	Op       string `json:"op"`
	Key      string `json:"key"`
	Revision int64  `json:"revision,omitempty"`
	Deleted  bool   `json:"deleted,omitempty"`
}
