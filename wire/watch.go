package wire

// WatchResponse is one line of the body of GET /v1/watch, which is newline-delimited JSON
// (application/x-ndjson): one WatchResponse per line, each line whole in itself.
type WatchResponse struct {
	// Revision is how far the watch has been served: every change matching it up to this
	// store revision has been sent. A client that reconnects resumes with from=Revision+1.
	Revision int64 `json:"revision"`
	// Created marks the first line, sent as soon as the watch is set up.
	Created bool `json:"created,omitempty"`
	// Progress marks a line without events sent while the watch is idle: the watcher has
	// every change up to Revision. On a linearizable watch the member confirmed with the
	// primary first that it was that recent.
	Progress bool `json:"progress,omitempty"`
	// Events are the changes after the previous line's revision, in revision order; the
	// writes of one transaction share a revision and always come in the same line.
	Events []WatchEvent `json:"events,omitempty"`
	// Canceled, on the last line only, says why the member ended the watch, with a reason
	// code: 410 watch-compacted, 412 watch-slow, 413 watch-unavailable or 207 shutdown.
	Canceled *Error `json:"canceled,omitempty"`
	// Oldest is, with 410 watch-compacted, the oldest revision the member can still watch
	// from.
	Oldest int64 `json:"oldest,omitempty"`
}

// Types of a WatchEvent.
const (
	EventPut    = "put"
	EventDelete = "delete"
)

// WatchEvent is one change of a key.
type WatchEvent struct {
	Type string `json:"type"` // EventPut or EventDelete
	Key  string `json:"key"`
	// Value is the new value of a put (base64 in JSON, like a listing's); absent on a delete.
	Value []byte `json:"value,omitempty"`
	// Revision is the store revision of the change, which is also the key's new revision
	// (its ETag after a put, etcd's mod_revision).
	Revision int64 `json:"revision"`
	// Created is the revision that created the key (etcd's create_revision); 0 on a delete.
	Created int64 `json:"created,omitempty"`
}

// HeaderOldestRevision carries, on a 410 watch-compacted refusal, the oldest revision the
// member can watch from.
const HeaderOldestRevision = "X-Mirrorkv-Oldest-Revision"
