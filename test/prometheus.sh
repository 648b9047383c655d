#!/usr/bin/env bash
# Builds the pinned Prometheus and promtool from their Go module
# (test/tools/prometheus) into .cache/prometheus/VERSION/, once per version,
# and prints the prometheus binary's path (promtool sits beside it).
#
# Why not Debian's: its prometheus package (2.42+ds) is built without Consul
# service discovery ("Disable Consul SD until its Debian package is back in
# shape", changelog), so neither its prometheus nor its promtool accepts
# consul_sd_configs, which pilot's telemetry.register exists for.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '$1 == "github.com/prometheus/prometheus" {print $2; exit}' "$root/test/tools/prometheus/go.mod")
[ -n "$version" ] || { echo "prometheus.sh: no prometheus version pinned in test/tools/prometheus/go.mod" >&2; exit 1; }
dir="$root/.cache/prometheus/$version"
if [ ! -x "$dir/prometheus" ] || [ ! -x "$dir/promtool" ]; then
  echo "prometheus.sh: building prometheus $version (first time only, several minutes)" >&2
  mkdir -p "$dir"
  for cmd in prometheus promtool; do
    (cd "$root/test/tools/prometheus" && CGO_ENABLED=0 go build -trimpath -o "$dir/$cmd.tmp" "github.com/prometheus/prometheus/cmd/$cmd")
    mv "$dir/$cmd.tmp" "$dir/$cmd"
  done
fi
echo "$dir/prometheus"
