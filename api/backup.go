package api

import (
	"net/http"
	"time"

	"github.com/mirrorkv/mirrorkv/wire"
)

// backup streams a consistent copy of the store from the primary: the snapshot stream of
// docs/storage.md, which ends with its own checksum, so that a copy cut short is told from
// a whole one by whoever reads it. `mirrorkv snapshot save` wraps it into a backup file.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	snap, err := s.grp.Backup(r.Context())
	if err != nil {
		return err
	}
	defer snap.Release()
	// The server's read timeout counts from the request's start and, once it passes, cancels
	// the request: a backup takes as long as its size, so the stream lifts it.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	h := w.Header()
	h["Content-Type"] = s.octetStream
	h[wire.HeaderGroup] = []string{s.cfg.Group}
	w.WriteHeader(http.StatusOK)
	if n, err := snap.WriteTo(w); err != nil {
		s.log.Warn("backup stream cut short; the client's copy is refused as truncated", "bytes", n, "err", err)
		panic(http.ErrAbortHandler) // no final chunk: the client sees the stream end early
	}
	return nil
}
