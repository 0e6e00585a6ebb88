#!/usr/bin/env bash
# make release: static binaries of edge-agent, cloud and devsim for
# linux/amd64, linux/arm64 and linux/arm (ARMv7), stamped with the version,
# commit and build date (`<binary> -version`, plantroom_build_info), the
# plantroom-edge Debian package for each architecture, and SHA256SUMS.
#
#   VERSION=1.2.0 make release      # default: 0.1.0~git<date>.<commit> from git
#   OUT=dist ARCHES="amd64 arm" make release
#
# Everything lands in $OUT (dist/). The packages are built in Go
# (internal/release, nfpm): no dpkg-deb or other Debian tool is needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${OUT:-dist}
ARCHES=${ARCHES:-amd64 arm64 arm}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="$commit-dirty"
fi
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [[ -z "${VERSION:-}" ]]; then
    # A tag v1.2.0 on HEAD gives 1.2.0; otherwise a version that sorts
    # before the next release and after the previous snapshot.
    if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
        VERSION=${tag#v}
    else
        VERSION="0.1.0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M 2>/dev/null || date -u +%Y%m%d%H%M).$(git rev-parse --short=8 HEAD 2>/dev/null || echo unknown)"
    fi
fi
pkg=github.com/plantroom/plantroom/internal/buildinfo
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$commit -X $pkg.Date=$date"

rm -rf "$OUT"
mkdir -p "$OUT"
echo "version $VERSION, commit $commit, built $date"
for arch in $ARCHES; do
    suffix=$arch
    goarm=
    if [[ $arch == arm ]]; then
        goarm=7
        suffix=armv7
    fi
    for prog in edge-agent:./edge/cmd/edge-agent cloud:./cloud/cmd/cloud devsim:./devices/cmd/devsim; do
        name=${prog%%:*}
        bin="$OUT/${name}_${VERSION}_linux_${suffix}"
        CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$goarm \
            go build -trimpath -ldflags "$ldflags" -o "$bin" "${prog#*:}"
        printf '%-52s %9d bytes\n' "$bin" "$(stat -c %s "$bin")"
    done
    go run ./internal/release/mkdeb -version "$VERSION" -arch "$arch" \
        -binary "$OUT/edge-agent_${VERSION}_linux_${suffix}" -out "$OUT"
done
(cd "$OUT" && sha256sum -- * > SHA256SUMS)
echo "checksums: $OUT/SHA256SUMS"
