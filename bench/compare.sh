#!/bin/sh
# compare.sh runs the mirrorkv/etcd comparison (bench/compare) with the flags given, for
# example: bench/compare.sh -mode all -duration 10s. See docs/benchmarks.md.
set -eu
cd "$(dirname "$0")/compare"
exec go run . "$@"
