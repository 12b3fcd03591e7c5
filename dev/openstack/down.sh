#!/usr/bin/env bash
# down.sh: stop the OpenStack test cloud that dev/openstack/up.sh started.
#
# Only the process groups that up.sh recorded under /var/lib/kaas-openstack/pids
# are signalled, never processes found by name. The OpenStack services go
# first, then the infrastructure they use (RabbitMQ, MariaDB, memcached), so
# that MariaDB shuts down cleanly once nobody writes to it. Each tier gets
# SIGTERM, then SIGKILL after $KAAS_OPENSTACK_STOP_TIMEOUT seconds (default 20).
# Configuration and data stay: up.sh starts the same cloud again.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../errtrap.sh
. "$HERE/../errtrap.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

TIMEOUT=${KAAS_OPENSTACK_STOP_TIMEOUT:-20}
INFRA=(rabbitmq epmd mariadb memcached)

# stop_tier NAME...: TERM the groups, wait for them, KILL what is left
stop_tier() {
  local name live=() i
  for name in "$@"; do
    if group_gone "$name"; then
      rm -f "$PIDDIR/$name.pid"
    else
      signal_group "$name" TERM
      live+=("$name")
    fi
  done
  ((${#live[@]})) || return 0
  log "stopping ${live[*]}"
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    local left=()
    for name in "${live[@]}"; do
      group_gone "$name" || left+=("$name")
    done
    live=("${left[@]}")
    ((${#live[@]})) || break
    sleep 0.5
  done
  if ((${#live[@]})); then
    log "still running after ${TIMEOUT}s, killing: ${live[*]}"
    for name in "${live[@]}"; do signal_group "$name" KILL; done
    for ((i = 0; i < 20; i++)); do
      local left=()
      for name in "${live[@]}"; do
        group_gone "$name" || left+=("$name")
      done
      live=("${left[@]}")
      ((${#live[@]})) || break
      sleep 0.5
    done
    ((${#live[@]} == 0)) || { echo "ERROR: could not stop ${live[*]}" >&2; return 1; }
  fi
  for name in "$@"; do rm -f "$PIDDIR/$name.pid"; done
}

main() {
  [ "$(id -u)" = 0 ] || { echo "ERROR: run as root" >&2; exit 1; }
  local start=$SECONDS services=() f name
  shopt -s nullglob
  for f in "$PIDDIR"/*.pid; do
    name=$(basename "$f" .pid)
    [[ " ${INFRA[*]} " == *" $name "* ]] || services+=("$name")
  done
  if ((${#services[@]})); then stop_tier "${services[@]}"; fi
  local infra=()
  for name in "${INFRA[@]}"; do
    [ -f "$PIDDIR/$name.pid" ] && infra+=("$name")
  done
  if ((${#infra[@]})); then stop_tier "${infra[@]}"; fi
  log "test cloud stopped in $((SECONDS - start))s"
}

main "$@"
