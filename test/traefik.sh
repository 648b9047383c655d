#!/usr/bin/env bash
# Builds the pinned Traefik from its Go module (test/tools/traefik) into
# .cache/traefik/VERSION/traefik, once per version, and prints its path. The
# first build takes about 7 minutes on 2 cores; later calls return at once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '$1 == "github.com/traefik/traefik/v3" {print $2; exit}' "$root/test/tools/traefik/go.mod")
[ -n "$version" ] || { echo "traefik.sh: no traefik version pinned in test/tools/traefik/go.mod" >&2; exit 1; }
bin="$root/.cache/traefik/$version/traefik"
if [ ! -x "$bin" ]; then
  echo "traefik.sh: building traefik $version (first time only, several minutes)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd "$root/test/tools/traefik" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" github.com/traefik/traefik/v3/cmd/traefik)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
