#!/usr/bin/env bash
# Remakes docs/invoice.png and docs/report.png from the sample data with headless Chromium
# (Debian package chromium). Run from the repository root: bash docs/screenshots.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
export USAGEBILL_CONFIG="$root/meters.yaml.example" USAGEBILL_DB="$work/usagebill.duckdb"
usagebill ingest "$root/sample_data" 2>/dev/null
usagebill invoice --period 2026-10 --format html --output invoices 2>/dev/null
usagebill report --period 2026-10 --output report.html 2>/dev/null
shot() {  # shot PAGE PNG WIDTH,HEIGHT
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d -p "$work")" --hide-scrollbars \
        --force-device-scale-factor=1 --window-size="$3" --screenshot="$2" "file://$work/$1" \
        2>/dev/null
}
shot invoices/INV-2026-10-cus_blue.html "$root/docs/invoice.png" 900,1000
shot report.html "$root/docs/report.png" 960,1420
echo "wrote $root/docs/invoice.png and $root/docs/report.png"
