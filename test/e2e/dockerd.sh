#!/usr/bin/env bash
# A private Docker engine for the e2e suite (see ../shared/design/REAL-COMPONENTS.md).
#
#   dockerd.sh install      apt-get install docker.io docker-compose busybox-static (idempotent)
#   dockerd.sh start DIR    start dockerd with everything under DIR; waits for `docker info`;
#                           prints `export DOCKER_HOST=unix://DIR/docker.sock`
#   dockerd.sh stop DIR     stop it by the pid in DIR/pid (SIGTERM, then SIGKILL after 20 s)
#
# E2E_DOCKERD_ARGS, if set, is appended to dockerd's arguments (split on
# blanks), e.g. E2E_DOCKERD_ARGS=--live-restore for a daemon whose
# containers outlive its restart.
#
# Isolation, so that two runs (or a system dockerd) never collide:
#   - socket, pidfile, data-root, exec-root (and the containerd it manages,
#     and the container netns files) all live under DIR;
#   - --config-file DIR/daemon.json: /etc/docker/daemon.json is not read;
#   - --bridge=none: no default docker0 bridge (the name is global to the
#     host); builds use `--network host`, containers use user-defined
#     networks, whose bridges are named br-<network id>, unique per daemon;
#   - --default-address-pool from E2E_POOL (default: 10.N.0.0/16 with N in
#     200..249 from a hash of DIR, skipping any 10.N already in the routing
#     table; /24 per network), so two daemons do not hand out the same subnet;
#   - --iptables=false --ip-forward=false: the host's iptables and sysctls
#     are left alone (the daemon would otherwise install global DOCKER
#     chains, a FORWARD DROP policy and MASQUERADE rules that outlive it and
#     that two daemons would fight over). Container<->container traffic on
#     one network is plain L2 on its bridge, host->container goes over the
#     bridge (the host holds the gateway address) or through docker-proxy
#     for published ports (use 127.0.0.1::PORT, ephemeral, to avoid clashes).
#     Containers have no route out; nothing needs one (builds run with
#     --network host).
# DIR must be short: unix socket paths (containerd's is DIR/exec/containerd/
# containerd.sock) are limited to 107 bytes.
set -euo pipefail

docker_cli=/usr/bin/docker   # Debian's 20.10 client, matching the daemon

install() {
  local need=()
  [ -x /usr/sbin/dockerd ] && [ -x "$docker_cli" ] || need+=(docker.io)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx ash || need+=(busybox-static)
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "dockerd.sh: need ${need[*]} and not root" >&2; exit 1; }
    echo "dockerd.sh: apt-get install ${need[*]}" >&2
    apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
    }
  fi
}

start() {
  local d=$1 i
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  if [ -s "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
    echo "dockerd.sh: already running in $d (pid $(cat "$d/pid"))" >&2
    echo "export DOCKER_HOST=unix://$d/docker.sock"; return
  fi
  local pool=${E2E_POOL:-} n
  if [ -z "$pool" ]; then
    # 10.N.0.0/16, N from a hash of DIR, skipping Ns already routed here
    n=$(( $(printf %s "$d" | cksum | cut -d' ' -f1) % 50 ))
    for i in $(seq 50); do
      ip route | grep -q "^10\.$((200 + n))\." || break
      n=$(( (n + 1) % 50 ))
    done
    pool=10.$((200 + n)).0.0/16
  fi
  echo '{}' >"$d/daemon.json"
  # setsid: the daemon is not in the caller's process group, so ^C on the
  # test does not kill it before the harness stops it by pid.
  setsid /usr/sbin/dockerd \
    --config-file "$d/daemon.json" \
    --storage-driver=vfs \
    --data-root "$d/data" --exec-root "$d/exec" \
    -H "unix://$d/docker.sock" --pidfile "$d/pid" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --default-address-pool "base=$pool,size=24" \
    ${E2E_DOCKERD_ARGS:-} \
    </dev/null >"$d/dockerd.log" 2>&1 &
  local pid=$!
  for i in $(seq 300); do
    if DOCKER_HOST="unix://$d/docker.sock" "$docker_cli" info >/dev/null 2>&1; then
      echo "export DOCKER_HOST=unix://$d/docker.sock"; return
    fi
    kill -0 "$pid" 2>/dev/null || { echo "dockerd.sh: dockerd exited:" >&2; tail -20 "$d/dockerd.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "dockerd.sh: dockerd not answering after 30 s:" >&2; tail -20 "$d/dockerd.log" >&2
  kill "$pid" 2>/dev/null || true; exit 1
}

stop() {
  local d=$1 pid i
  [ -s "$d/pid" ] || { unmount_under "$d"; return 0; }
  pid=$(cat "$d/pid")
  kill -0 "$pid" 2>/dev/null || { unmount_under "$d"; return 0; }
  kill -TERM "$pid"
  for i in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd.sh: dockerd $pid still alive after 20 s, SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  unmount_under "$d"
}

# dockerd leaves DIR/exec/netns/default (an nsfs bind mount) behind, and a
# killed one may leave more (the data root, container netns): unmount every
# mount point under DIR, deepest first, so that DIR can be removed.
unmount_under() {
  local d m
  d=$(cd "$1" && pwd)
  awk -v d="$d/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "dockerd.sh: cannot unmount $m" >&2
  done
}

case "${1:-}" in
  install) install ;;
  start) [ $# = 2 ] || { echo "usage: dockerd.sh start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ $# = 2 ] || { echo "usage: dockerd.sh stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: dockerd.sh install | start DIR | stop DIR" >&2; exit 2 ;;
esac
