package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mirrorkv/mirrorkv/wire"
)

// BackupStream is a consistent copy of the group's store as the primary streams it: the
// snapshot stream of docs/storage.md, which ends with its own checksum. Read Body to its end
// and close it.
type BackupStream struct {
	Body   io.ReadCloser
	Group  string // the group it was taken from
	Member string // the primary that served it
}

// Backup asks the primary for a consistent copy of the store (GET /v1/backup; an admin
// certificate). The members that are not primary name it, and the client asks it next. ctx
// bounds the whole transfer, not only its start: give it no deadline shorter than the copy
// takes, or none.
func (c *Client) Backup(ctx context.Context) (*BackupStream, error) {
	var last error
	n := len(c.endpoints)
	for attempt := range 3 * n {
		ep := c.endpoints[(int(c.next.Load())+attempt)%n]
		b, err := c.backupFrom(ctx, ep)
		if e, ok := errors.AsType[*Error](err); ok && e.Primary != "" && e.Primary != ep {
			b, err = c.backupFrom(ctx, e.Primary)
		}
		if err == nil {
			return b, nil
		}
		last = err
		if !retryable(err, true) || ctx.Err() != nil {
			break
		}
		if err := sleep(ctx, backoff(attempt, n, err)); err != nil {
			break
		}
	}
	return nil, fmt.Errorf("backup: %w", last)
}

func (c *Client) backupFrom(ctx context.Context, endpoint string) (*BackupStream, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v1/backup", nil)
	if err != nil {
		return nil, fmt.Errorf("build backup request: %w", err)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, &transportError{endpoint: endpoint, err: err}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, parseError(endpoint, resp, data)
	}
	return &BackupStream{Body: resp.Body, Group: resp.Header.Get(wire.HeaderGroup), Member: resp.Header.Get(wire.HeaderServedBy)}, nil
}
