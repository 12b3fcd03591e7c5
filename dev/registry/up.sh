#!/usr/bin/env bash
# up.sh: start a local OCI registry for kaas's tests and the demo: Debian's
# docker-registry package (the CNCF Distribution registry 2.8) on 127.0.0.1, no
# authentication, deletes enabled, blobs on the filesystem. Prints its URL
# (oci://127.0.0.1:PORT) on stdout.
#
#   dev/registry/up.sh                 # start (or find running) on port 5100
#   KAAS_REGISTRY_PORT=5001 dev/registry/up.sh
#   kaas stack mirror scs-1.36 --to "$(dev/registry/up.sh)/kaas"
#   # the integrated registry, kaas its token service (what dev/demo.sh does):
#   kaas registry config --listen 127.0.0.1:5101 … > cfg.yml
#   KAAS_REGISTRY_CONFIG=cfg.yml KAAS_REGISTRY_PORT=5101 \
#     KAAS_REGISTRY_STATE=~/.local/state/kaas/tenant-registry dev/registry/up.sh
#
# Idempotent: a registry this script started that still answers is left running
# and its URL printed again. No systemd: the binary runs in the background with
# its pid in $STATE/registry.pid; dev/registry/down.sh stops exactly that process.
# State (config, data, pid file, log) lives in $KAAS_REGISTRY_STATE, by default
# $XDG_STATE_HOME/kaas/registry (~/.local/state/kaas/registry). Needs the
# docker-registry package (dev/test.sh installs it; otherwise
# `apt-get install -y docker-registry`).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../errtrap.sh
. "$HERE/../errtrap.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

BINARY=/usr/bin/docker-registry
if [ ! -x "$BINARY" ]; then
  echo "ERROR: $BINARY is missing: install Debian's docker-registry package (apt-get install -y docker-registry)" >&2
  exit 1
fi

if registry_running; then
  if answers; then
    echo "oci://127.0.0.1:$(cat "$PORT_FILE")"
    exit 0
  fi
fi

mkdir -p "$STATE/data"
if [ -n "${KAAS_REGISTRY_CONFIG:-}" ]; then
  # A configuration written elsewhere (`kaas registry config`): served as it is.
  cp "$KAAS_REGISTRY_CONFIG" "$CONFIG"
else
cat >"$CONFIG" <<YAML
# Written by dev/registry/up.sh; rewritten on every start.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$PORT
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
fi

# A stale pid file (the process is gone, or not ours any more) is replaced.
rm -f "$PIDFILE" "$PORT_FILE"
setsid "$BINARY" serve "$CONFIG" >>"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
echo "$PORT" >"$PORT_FILE"

for _ in $(seq 1 100); do
  if answers; then
    echo "oci://127.0.0.1:$PORT"
    exit 0
  fi
  if ! registry_running; then
    break
  fi
  sleep 0.1
done
echo "ERROR: the registry did not answer on 127.0.0.1:$PORT; the end of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
