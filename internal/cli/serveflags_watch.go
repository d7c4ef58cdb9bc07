package cli

import (
	"github.com/spf13/pflag"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/node"
	"github.com/mirrorkv/mirrorkv/store"
)

// bindWatchFlags binds the serve flags of watches (GET /v1/watch, docs/api.md).
func bindWatchFlags(f *pflag.FlagSet, cfg *node.Config) {
	f.Int64Var(&cfg.WatchHistory, "watch-history", store.DefaultChangeRetention, "latest `REVISIONS` the change log keeps for watches; a watch from an older revision gets 410 watch-compacted")
	f.IntVar(&cfg.API.MaxWatchers, "max-watchers", api.DefaultMaxWatchers, "watches this member serves at once; one more gets 429 watch-too-many")
	f.IntVar(&cfg.API.WatchBuffer, "watch-buffer", api.DefaultWatchBuffer, "`BYTES` of events one watcher may hold that its connection has not taken")
	f.DurationVar(&cfg.API.WatchSlowTimeout, "watch-slow-timeout", api.DefaultWatchSlowTimeout, "how long a watcher may leave its --watch-buffer full before it is cut off with 412 watch-slow")
	f.DurationVar(&cfg.API.WatchProgressInterval, "watch-progress-interval", api.DefaultWatchProgressInterval, "silence on a watch before the member sends a progress line")
}
