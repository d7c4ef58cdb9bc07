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
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h["Content-Type"] = s.octetStream
	h[wire.HeaderGroup] = []string{s.cfg.Group}
	w.WriteHeader(http.StatusOK)
	// The snapshot holds a read transaction of the store open until it is written: a client
	// that stops reading is cut off after LargeReadTimeout without progress, as large reads
	// are, rather than keeping it open for good.
	out := &deadlineWriter{w: w, rc: rc, timeout: s.cfg.LargeReadTimeout}
	if n, err := snap.WriteTo(out); err != nil {
		s.log.Warn("backup stream cut short; the client's copy is refused as truncated", "bytes", n, "err", err)
		panic(http.ErrAbortHandler) // no final chunk: the client sees the stream end early
	}
	return nil
}

// deadlineWriter moves the connection's write deadline timeout ahead before each write.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout)) // a test's recorder has no deadlines
	return d.w.Write(p)
}
