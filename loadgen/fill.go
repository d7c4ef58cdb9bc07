package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Fill writes every key of cfg once, with cfg.Clients writers, so that reads in a run with
// the same Keys, KeyPrefix and ValueSize find their keys. It stops at the first error.
func Fill(ctx context.Context, target Target, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("fill keys: %w", err)
	}
	cfg = cfg.withDefaults()
	keys, value := cfg.keys(), cfg.value()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cfg.Clients, len(keys)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) || ctx.Err() != nil {
					return
				}
				opCtx, opCancel := ctx, context.CancelFunc(func() {})
				if cfg.Timeout > 0 {
					opCtx, opCancel = context.WithTimeout(ctx, cfg.Timeout)
				}
				err := target.Do(opCtx, Op{Kind: Write, Key: keys[i], Value: value})
				opCancel()
				if err != nil {
					cancel(fmt.Errorf("fill key %s: %w", keys[i], err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
