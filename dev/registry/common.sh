# Sourced by dev/registry/up.sh and down.sh: where the registry's state is, and
# whether the one they started runs.
STATE=${KAAS_REGISTRY_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/kaas/registry}
PORT=${KAAS_REGISTRY_PORT:-5100}
CONFIG=$STATE/config.yml
PIDFILE=$STATE/registry.pid
PORT_FILE=$STATE/registry.port
LOG=$STATE/registry.log
mkdir -p "$STATE"

# registry_running: the pid file names a live docker-registry process
registry_running() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "docker-registry serve $CONFIG"
}

# answers: the registry of the port file answers the distribution API (200, or 401
# with a token challenge when kaas is its token service)
answers() {
  local port
  port=$(cat "$PORT_FILE" 2>/dev/null) || return 1
  python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 401 and e.headers.get("Docker-Distribution-Api-Version") else 1)
PY
}
