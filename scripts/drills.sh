#!/usr/bin/env bash
# Fault drills over the whole chain (see drills/README.md).
#
#   make drills                       build, then run every drill (about 4 minutes)
#   bash scripts/drills.sh -long      minutes-long outages
#   bash scripts/drills.sh -run uplink-down,edge-kill -v
#
# Arguments are passed to the drills program (go run ./drills -h lists
# them). The drills start real processes (bin/cloud, bin/devsim,
# bin/edge-agent, and a ClickHouse server of their own for
# clickhouse-restart) on free loopback ports, and make one database per
# drill on the local ClickHouse (scripts/clickhouse.sh; CLICKHOUSE_ADDR
# points them at another server). Exit status 1 when a drill fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
GO="${GO:-go}"

if [[ -z "${CLICKHOUSE_ADDR:-}" ]]; then
    bash scripts/clickhouse.sh start >&2
fi

for b in edge-agent cloud devsim; do
    if [[ ! -x "bin/$b" ]]; then
        echo "drills.sh: bin/$b is missing; run make build (make drills does)" >&2
        exit 2
    fi
done

mkdir -p bin
"$GO" build -o bin/drills ./drills
exec bin/drills -repo "$REPO" "$@"
