#!/usr/bin/env bash
# Builds the pinned Consul agent from its Go module (test/tools/consul) into
# .cache/consul/VERSION/consul, once per version, and prints its path. The
# first build takes several minutes on 2 cores; later calls return at once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '$1 == "github.com/hashicorp/consul" {print $2; exit}' "$root/test/tools/consul/go.mod")
[ -n "$version" ] || { echo "consul.sh: no consul version pinned in test/tools/consul/go.mod" >&2; exit 1; }
bin="$root/.cache/consul/$version/consul"
if [ ! -x "$bin" ]; then
  echo "consul.sh: building consul $version (first time only, several minutes)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd "$root/test/tools/consul" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" github.com/hashicorp/consul)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
