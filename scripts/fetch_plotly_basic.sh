#!/usr/bin/env bash
# Fetch plotly.js's basic bundle (MIT) from the npm registry into src/pbtlab/serve/static/ and check it is the file
# pbtlab ships (its sha256 is PLOTLY_BASIC_SHA256 in src/pbtlab/serve/figures.py). Needs npm.
set -euo pipefail
version="${1:-4.1.1}"
here="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "plotly.js-basic-dist-min@$version" >/dev/null && tar xzf ./*.tgz)
cp "$scratch/package/plotly-basic.min.js" "$here/src/pbtlab/serve/static/plotly-basic.min.js"
cp "$scratch/package/LICENSE" "$here/src/pbtlab/serve/static/plotly-basic.LICENSE"
sha256sum "$here/src/pbtlab/serve/static/plotly-basic.min.js"
grep -o 'PLOTLY_BASIC_SHA256 = "[0-9a-f]*"' "$here/src/pbtlab/serve/figures.py"
