#!/usr/bin/env bash
# Stand-ins for the registry images the Dockerfiles name, assembled from this
# machine's own files and loaded with `docker import` (no registry here).
#
#   standins.sh go TAG     a golang:*-bookworm stand-in: the machine's Go
#                          toolchain at /usr/local/go, busybox as /bin/sh and
#                          coreutils, CA certificates; GOTOOLCHAIN=local.
#   standins.sh node TAG   a node:*-slim stand-in: the machine's node and the
#                          libraries ldd lists, busybox, a `node` user (1000).
#   standins.sh consul TAG      hashicorp/consul: .cache/consul/v*/consul
#   standins.sh traefik TAG     traefik: .cache/traefik/v*/traefik
#   standins.sh prometheus TAG  prom/prometheus: .cache/prometheus/v*/prometheus
#                          (the static binaries the unit tests' fetch caches;
#                          newest version present), busybox, CA certificates,
#                          the official images' ENTRYPOINT/CMD.
#   standins.sh nginx TAG  nginx:*-bookworm: the machine's /usr/sbin/nginx
#                          (Debian nginx-light) and its ldd libraries,
#                          /etc/nginx, users nginx and www-data.
#
# Needs DOCKER_HOST set (dockerd.sh start) and busybox-static (dockerd.sh
# install). Does nothing when TAG already exists in that engine.
set -euo pipefail
docker=/usr/bin/docker
kind=${1:-}; tag=${2:-}
[ -n "$kind" ] && [ -n "$tag" ] || { echo "usage: standins.sh go|node|consul|traefik|prometheus|nginx TAG" >&2; exit 2; }
if "$docker" image inspect "$tag" >/dev/null 2>&1; then exit 0; fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
# cached NAME: the newest .cache/NAME/v*/NAME
cached() {
  local f
  f=$(ls -d "$repo/.cache/$1"/v*/"$1" 2>/dev/null | sort -V | tail -1)
  [ -n "$f" ] && [ -x "$f" ] || { echo "standins.sh: no $repo/.cache/$1/v*/$1" >&2; exit 1; }
  echo "$f"
}
# libs BIN: copy every library ldd lists to the path the loader looks for it
libs() {
  ldd "$1" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
imp() { # imp TAG --change ... : tar the rootfs into docker import
  local t=$1; shift
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | "$docker" import "$@" - "$t" >/dev/null
}
PATHENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

root=$(mktemp -d "${TMPDIR:-/tmp}/standin.XXXXXX")
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"   # mktemp -d makes it 0700: it becomes the image's /

base() { # busybox for /bin/sh and the usual tools; /etc basics; /tmp
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,etc/ssl/certs,usr/local/bin}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

case "$kind" in
go)
  goroot=$(go env GOROOT)
  base
  mkdir -p "$root/usr/local/go" "$root/go/bin" "$root/go/src"
  # The toolchain minus its tests, API lists and docs (not needed to build).
  tar -C "$goroot" --exclude=./test --exclude=./api --exclude=./doc -cf - . | tar -C "$root/usr/local/go" -xf -
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | "$docker" import \
    --change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV GOPATH=/go' \
    --change 'ENV GOTOOLCHAIN=local' \
    --change 'ENV GOLANG_VERSION='"$(go env GOVERSION | sed 's/^go//')" \
    --change 'WORKDIR /go' \
    --change 'CMD ["/bin/sh"]' \
    - "$tag" >/dev/null
  ;;
node)
  nodebin=$(readlink -f "$(command -v node)")
  base
  # node at /usr/local/bin like the official image, and /usr/bin for good measure
  cp "$nodebin" "$root/usr/local/bin/node"
  ln -s ../local/bin/node "$root/usr/bin/node"
  # every library ldd lists, at the path the loader looks for it
  ldd "$nodebin" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # the loader's own path (/lib64/ld-linux-x86-64.so.2) needs /lib64
  echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$root/etc/passwd"
  echo 'node:x:1000:' >>"$root/etc/group"
  mkdir -p "$root/home/node"
  chown 1000:1000 "$root/home/node"
  tar -C "$root" --numeric-owner -cf - . | "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_VERSION='"$("$nodebin" --version | sed 's/^v//')" \
    --change 'CMD ["node"]' \
    - "$tag" >/dev/null
  ;;
consul)
  base
  cp "$(cached consul)" "$root/bin/consul"
  mkdir -p "$root/consul/data" "$root/consul/config"
  # like hashicorp/consul: consul on PATH, `agent -dev -client 0.0.0.0` by default
  imp "$tag" --change "$PATHENV" \
    --change 'ENTRYPOINT ["consul"]' \
    --change 'CMD ["agent", "-dev", "-client", "0.0.0.0"]'
  ;;
traefik)
  base
  cp "$(cached traefik)" "$root/usr/local/bin/traefik"
  mkdir -p "$root/etc/traefik"
  imp "$tag" --change "$PATHENV" \
    --change 'ENTRYPOINT ["/usr/local/bin/traefik"]' \
    --change 'EXPOSE 80'
  ;;
prometheus)
  base
  cp "$(cached prometheus)" "$root/bin/prometheus"
  [ -x "$(dirname "$(cached prometheus)")/promtool" ] && cp "$(dirname "$(cached prometheus)")/promtool" "$root/bin/promtool"
  mkdir -p "$root/etc/prometheus" "$root/prometheus"
  chmod 1777 "$root/prometheus"   # the official image runs as nobody; any user may write
  printf 'global:\n  scrape_interval: 15s\n' >"$root/etc/prometheus/prometheus.yml"
  imp "$tag" --change "$PATHENV" \
    --change 'WORKDIR /prometheus' \
    --change 'ENTRYPOINT ["/bin/prometheus"]' \
    --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    --change 'EXPOSE 9090'
  ;;
nginx)
  base
  cp /usr/sbin/nginx "$root/usr/sbin/nginx"
  libs /usr/sbin/nginx
  mkdir -p "$root/etc/nginx/conf.d" "$root/var/log/nginx" "$root/var/lib/nginx" "$root/var/cache/nginx" \
    "$root/run" "$root/usr/share/nginx/html"
  cp /etc/nginx/mime.types "$root/etc/nginx/"
  for f in fastcgi_params proxy_params scgi_params uwsgi_params; do
    [ -e "/etc/nginx/$f" ] && cp "/etc/nginx/$f" "$root/etc/nginx/"
  done
  # a minimal default config (the example replaces it)
  printf 'pid /run/nginx.pid;\nevents {}\nhttp { include mime.types; server { listen 80; root /usr/share/nginx/html; } }\n' >"$root/etc/nginx/nginx.conf"
  echo ok >"$root/usr/share/nginx/html/index.html"
  printf 'www-data:x:33:33:www-data:/var/www:/bin/false\nnginx:x:101:101:nginx:/nonexistent:/bin/false\n' >>"$root/etc/passwd"
  printf 'www-data:x:33:\nnginx:x:101:\n' >>"$root/etc/group"
  imp "$tag" --change "$PATHENV" \
    --change 'ENV NGINX_VERSION='"$(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///; s/ .*//')" \
    --change 'EXPOSE 80' \
    --change 'CMD ["nginx", "-g", "daemon off;"]'
  ;;
*) echo "standins.sh: unknown kind $kind (go, node, consul, traefik, prometheus, nginx)" >&2; exit 2 ;;
esac
