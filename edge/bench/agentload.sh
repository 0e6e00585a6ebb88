#!/usr/bin/env bash
# Edge agent CPU and RSS under a Modbus polling load, measured on the agent's
# process alone (see edge/bench/agentload/main.go), plus the durable queue's
# append+ack benchmark next to a bare bbolt loop.
#
#   bash edge/bench/agentload.sh            # 500 devices × 30 points at 1 s, 30 s measured
#   DEVICES=200 DURATION=10s bash edge/bench/agentload.sh
#
# Run from the repository root. Prints the figures on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEVICES=${DEVICES:-500}
POINTS=${POINTS:-30}
INTERVAL=${INTERVAL:-1s}
WARMUP=${WARMUP:-10s}
DURATION=${DURATION:-30s}
QUEUE_ITEMS=${QUEUE_ITEMS:-300000}

mkdir -p bin
go build -o bin/edge-agent ./edge/cmd/edge-agent
go build -o bin/agentload ./edge/bench/agentload

echo "== durable queue: append+ack vs bare bbolt loop (one op = one item of 30 readings)"
go test -run '^$' -bench 'BenchmarkQueueAppendAck' -benchtime "${QUEUE_ITEMS}x" ./edge/queue/ | grep -E '^Benchmark|^ok|FAIL'

echo "== edge agent process under load"
bin/agentload -agent bin/edge-agent -devices "$DEVICES" -points "$POINTS" -interval "$INTERVAL" -warmup "$WARMUP" -duration "$DURATION"
