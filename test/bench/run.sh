#!/usr/bin/env bash
# Benchmark pilot side by side with tini, dumb-init, pm2-runtime and no
# supervisor, each as PID 1 of a fresh PID namespace. See README.md here.
#
#   sudo test/bench/run.sh                 # pilot from ./bin/pilot (repo root)
#   PILOT=/tmp/pilot test/bench/run.sh -n 21 --strict
#   PILOT_BEFORE=/tmp/pilot-old test/bench/run.sh   # two builds side by side
#
# Installs what it needs: tini and dumb-init (apt), pm2 (npm, pinned, into
# test/bench/.cache). Extra arguments go to the harness (see --help).
# Prints a Markdown table and PASS/FAIL lines on stdout; raw samples go to
# test/bench/results/bench-<UTC time>.json (or $BENCH_JSON).
set -euo pipefail

PM2_VERSION=7.0.4

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$here/.cache"
cd "$root"

die() { echo "run.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root (unshare --pid needs it)"
command -v unshare >/dev/null || die "unshare (util-linux) not found"
command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
command -v go >/dev/null || die "go not found"

apt_install() { # apt_install PKG...: install, running apt-get update only if the first try fails
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 && return 0
	apt-get update -q >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1
}
if ! [ -x /usr/bin/tini ]; then
	echo "run.sh: installing tini" >&2
	apt_install tini || die "apt-get install tini failed"
fi
if ! [ -x /usr/bin/dumb-init ]; then
	echo "run.sh: installing dumb-init (optional column)" >&2
	apt_install dumb-init || echo "run.sh: dumb-init not installed; its column is skipped" >&2
fi

pm2_runtime="$cache/node_modules/.bin/pm2-runtime"
have=$(node -p "try{require('$cache/node_modules/pm2/package.json').version}catch(e){''}" 2>/dev/null || true)
if [ "$have" != "$PM2_VERSION" ]; then
	echo "run.sh: installing pm2@$PM2_VERSION into $cache" >&2
	mkdir -p "$cache"
	[ -f "$cache/package.json" ] || echo '{"private":true}' >"$cache/package.json"
	npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION" >&2 ||
		die "npm install pm2@$PM2_VERSION failed"
fi
[ -x "$pm2_runtime" ] || die "pm2-runtime missing at $pm2_runtime"

# The harness: standard library only, built from this module.
mkdir -p "$cache"
go build -o "$cache/bench" ./test/bench/supervisor || die "building the harness failed"
# The Go floor: the smallest correct PID 1 Go makes, measured beside pilot.
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$cache/gofloor" ./test/bench/gofloor || die "building the Go floor failed"

PILOT=${PILOT:-./bin/pilot}
case "$PILOT" in /*) ;; *) PILOT="$root/$PILOT" ;; esac
if ! [ -x "$PILOT" ]; then
	echo "run.sh: pilot binary not found at $PILOT; the pilot column is skipped" >&2
	echo "run.sh: (build it with: make build, or go build -o bin/pilot ./cmd/pilot)" >&2
fi

before=()
if [ -n "${PILOT_BEFORE:-}" ]; then
	before=(--pilot-before "$PILOT_BEFORE")
fi

json=${BENCH_JSON:-$here/results/bench-$(date -u +%Y%m%dT%H%M%SZ).json}
mkdir -p "$(dirname "$json")"
exec "$cache/bench" \
	--pilot "$PILOT" \
	--tini /usr/bin/tini \
	--dumb-init /usr/bin/dumb-init \
	--go-floor "$cache/gofloor" \
	--pm2-runtime "$pm2_runtime" \
	--node "$(command -v node)" \
	--json "$json" \
	--quiet-wait 60s \
	"${before[@]}" \
	"$@"
