#!/usr/bin/env bash
# demo.sh: the README's first command. Builds kaas, publishes its own stand-in charts
# to a local OCI registry (offline: nothing is fetched from the internet), and runs
# `kaas demo` on the simulated cloud with the local stacks (dev/stacks), whose addons
# come from that registry: a server, a cluster created with live progress, served
# until Ctrl-C. Arguments go to `kaas demo` (e.g. --exit, --sim-speed 100).
#
# Installs Debian's docker-registry package when it is missing (as root or through
# sudo). The registry keeps running afterwards; dev/registry/down.sh stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=errtrap.sh
. dev/errtrap.sh

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if [ ! -x /usr/bin/docker-registry ] || ! command -v python3 >/dev/null 2>&1; then
  echo "==> installing docker-registry and python3 (Debian)"
  STEP_LOG=$(mktemp)
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # No init system is assumed: keep the package's scripts from starting a service.
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  $sudo apt-get update -q >"$STEP_LOG" 2>&1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    docker-registry python3 >>"$STEP_LOG" 2>&1
  [ -z "$created_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
  rm -f "$STEP_LOG"
  STEP_LOG=""
fi

echo "==> building kaas (release)"
cargo build --release --locked --bin kaas
kaas=${CARGO_TARGET_DIR:-target}/release/kaas
echo "==> publishing the local stacks' charts to the local registry"
dev/charts/publish.sh "$kaas" >/dev/null
exec "$kaas" demo --stacks-dir dev/stacks --default-stack local-1.36 "$@"
