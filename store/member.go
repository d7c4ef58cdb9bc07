package store

import "encoding/json"

// Member is an authorised member as the store records it: in the set-member and
// remove-member commands of the raft log, in the members bucket and in snapshots. It is the
// store's own type, apart from the HTTP API's wire.Member, so that a change to the API cannot
// change what old logs, files and snapshots decode to. Its fields and their JSON names are
// part of those formats (docs/storage.md); TestSchema_* decode records written by earlier
// releases.
type Member struct {
	Name       string `json:"name"`                // raft server ID; the key of the record
	MemberAddr string `json:"memberAddr"`          // HOST:PORT of the member port
	ClientURL  string `json:"clientURL,omitempty"` // base URL of the client API, if any
	DN         string `json:"dn"`                  // the member certificate's subject DN
	Async      bool   `json:"async,omitempty"`     // follows without voting
	// PreferredIndex is the raft index of the set-preferred command that made this member
	// the preferred primary; 0: not preferred. Of several, the highest index is the
	// preference in force (Preferred). Releases before it ignore the field.
	PreferredIndex uint64 `json:"preferredIndex,omitempty"`
}

// Preferred is the member of ms that the group prefers as its primary: the one most recently
// made so by a set-preferred command. ok is false when no member is preferred.
func Preferred(ms []Member) (m Member, ok bool) {
	for _, c := range ms {
		if c.PreferredIndex > m.PreferredIndex {
			m, ok = c, true
		}
	}
	return m, ok
}

// encodeMember is the JSON of a member record, as the members bucket and snapshots hold it.
func encodeMember(m Member) ([]byte, error) {
	return json.Marshal(m)
}

// decodeMember reads the JSON of a member record. Fields it does not know are ignored, so a
// record from a newer release that only adds fields still reads.
func decodeMember(js []byte) (Member, error) {
	var m Member
	err := json.Unmarshal(js, &m)
	return m, err
}
