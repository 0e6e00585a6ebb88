#!/usr/bin/env bash
# The edge packages' tests on 32-bit ARM (GOARCH=arm GOARM=7) under Debian's
# qemu-user-static, as most plant-room gateways run them: an unaligned
# 64-bit atomic, an mmap size a 32-bit process cannot map or an int that
# overflows at 32 bits fails here first. Run by .ci/run and `make test-arm`.
#
# Tests that start their own test binary again (crash and kill tests, the
# full-filesystem test) start it through the emulator named by
# PLANTROOM_TEST_EXEC (internal/testenv), so no binfmt_misc registration is
# needed. The race detector does not exist on linux/arm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

emu=$(command -v qemu-arm-static || command -v qemu-arm || true)
if [[ -z "$emu" ]]; then
    echo "ERROR: qemu-arm-static not found: apt-get install qemu-user-static" >&2
    exit 1
fi
PKGS=${PKGS:-./edge/queue/ ./edge/modbus/ ./edge/uplink/ ./edge/agent/ ./edge/report/ ./edge/mqttin/ ./protocol/}
start=$(date +%s)
# shellcheck disable=SC2086
PLANTROOM_TEST_EXEC=$emu GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 \
    go test -exec "$emu" -count=1 -timeout 15m $PKGS
echo "edge tests on linux/arm (ARMv7, $emu): $(($(date +%s) - start)) s"
