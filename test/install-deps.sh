#!/usr/bin/env bash
# Installs what pilot's tests need on a fresh Debian machine of this kind.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v unshare >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# wrk loads the example app in the Node agent's overhead benchmark.
# (Prometheus and promtool are built by test/prometheus.sh: Debian's
# prometheus is built without Consul service discovery.)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need ${need[*]} and not root" >&2
    exit 1
  fi
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  }
fi
echo "install-deps: unshare $(unshare --version | awk '{print $NF}'), node $(node --version), $(/usr/sbin/nginx -v 2>&1), $(wrk -v 2>&1 | head -1)"
