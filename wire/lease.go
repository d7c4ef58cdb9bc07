package wire

// LeaseGrant is the body of POST /v1/leases.
type LeaseGrant struct {
	TTL int64 `json:"ttl"` // seconds
}

// Lease is a lease as the API reports it: the answer to a grant, a keep-alive and a revoke,
// and an element of LeaseList.
type Lease struct {
	ID  int64 `json:"id"`
	TTL int64 `json:"ttl"` // seconds, as granted; every keep-alive starts it again
	// Keys are the keys attached to it: on GET /v1/leases/ID, and on a revoke the keys it
	// deleted.
	Keys []string `json:"keys,omitempty"`
	// KeyCount is the number of keys attached, on GET /v1/leases.
	KeyCount int `json:"key_count"`
	// Revision is the store revision after a revoke: the one at which its keys went.
	Revision int64 `json:"revision,omitempty"`
}

// LeaseList is the answer to GET /v1/leases.
type LeaseList struct {
	Leases []Lease `json:"leases"`
}
