#!/usr/bin/env bash
# Refresh the console's vendored front-end libraries (htmx, Apache ECharts)
# from the npm registry. Run it by hand when a version changes; building,
# testing and running Plantroom never need Node or the network: the files it
# writes are committed under cloud/console/assets/vendor/.
#
#   scripts/vendor-assets.sh                 # the pinned versions below
#   HTMX_VERSION=2.0.11 ECHARTS_VERSION=6.1.0 scripts/vendor-assets.sh
set -euo pipefail

HTMX_VERSION=${HTMX_VERSION:-2.0.11}
ECHARTS_VERSION=${ECHARTS_VERSION:-6.1.0}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/cloud/console/assets/vendor"
command -v npm >/dev/null || { echo "vendor-assets: npm is needed to refresh the vendored files (not to build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch <package> <version>: unpacks the package tarball into $tmp/<package>
fetch() {
    local pkg=$1 ver=$2
    mkdir -p "$tmp/$pkg"
    (cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null)
    tar -xzf "$tmp/$pkg-$ver.tgz" -C "$tmp/$pkg" --strip-components=1
}

fetch htmx.org "$HTMX_VERSION"
fetch echarts "$ECHARTS_VERSION"

rm -rf "$dest"
mkdir -p "$dest/htmx" "$dest/echarts"
cp "$tmp/htmx.org/dist/htmx.min.js" "$dest/htmx/htmx.min.js"
cp "$tmp/htmx.org/LICENSE" "$dest/htmx/LICENSE"
# The common build (line, bar, pie, scatter; grid, tooltip, legend,
# dataZoom, markers, dataset…) holds every chart and component the console
# uses, at two thirds of the full build's size and parse time.
cp "$tmp/echarts/dist/echarts.common.min.js" "$dest/echarts/echarts.common.min.js"
cp "$tmp/echarts/LICENSE" "$dest/echarts/LICENSE"
[[ -f "$tmp/echarts/NOTICE" ]] && cp "$tmp/echarts/NOTICE" "$dest/echarts/NOTICE"

{
    echo "# Vendored front-end libraries of the console (written by scripts/vendor-assets.sh)."
    echo "# package version licence sha256-of-the-served-file"
    echo "htmx.org $HTMX_VERSION $(node -p "require('$tmp/htmx.org/package.json').license" 2>/dev/null || echo 0BSD) $(sha256sum "$dest/htmx/htmx.min.js" | cut -d' ' -f1)"
    echo "echarts $ECHARTS_VERSION $(node -p "require('$tmp/echarts/package.json').license" 2>/dev/null || echo Apache-2.0) $(sha256sum "$dest/echarts/echarts.common.min.js" | cut -d' ' -f1)"
} >"$dest/VERSIONS"
cat "$dest/VERSIONS"
