#!/usr/bin/env bash
# Render an HTML report in a real browser (headless Chromium) to a PNG screenshot.
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
# Installs Debian's `chromium` package when /usr/bin/chromium is missing (needs root and the apt
# registry). The flags keep the browser off the network, so the screenshot shows only what the
# self-contained page carries.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
html=$(realpath "$1")
png=$(realpath -m "$2")
size=${3:-1280,2000}
[[ -f "$html" ]] || { echo "$0: no such file: $1" >&2; exit 2; }

browser=/usr/bin/chromium
if [[ ! -x "$browser" ]]; then
    echo "$0: installing Debian's chromium (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$png"
# Chromium may keep running briefly after writing the screenshot; the timeout bounds a hung start.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-quic --no-first-run --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
    --screenshot="$png" "file://$html" >"$profile/chromium.log" 2>&1 || true
if [[ ! -s "$png" ]]; then
    echo "$0: chromium wrote no screenshot to $png; its log ends:" >&2
    tail -n 20 "$profile/chromium.log" >&2
    exit 1
fi
echo "$png"
