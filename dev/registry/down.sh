#!/usr/bin/env bash
# down.sh: stop the registry dev/registry/up.sh started (the process in its pid
# file, never one found by name). Its data stays; `down.sh --purge` removes it too.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../errtrap.sh
. "$HERE/../errtrap.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

if registry_running; then
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  for _ in $(seq 1 50); do
    registry_running || break
    sleep 0.1
  done
  if registry_running; then
    kill -KILL "$pid"
  fi
  echo "registry (pid $pid) stopped"
else
  echo "no registry of dev/registry/up.sh is running"
fi
rm -f "$PIDFILE" "$PORT_FILE"
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$STATE"
  echo "removed $STATE"
fi
