#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs Debian packages (as root or through sudo), with
# the packages' scripts kept from starting services (no init system is assumed here).
# Sourced scripts' error trap shows the end of the apt log when a step fails.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=errtrap.sh
. "$HERE/errtrap.sh"

(($#)) || exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "==> installing $* (Debian)"
STEP_LOG=$(mktemp)
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
$sudo apt-get update -q >"$STEP_LOG" 2>&1
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
  "$@" >>"$STEP_LOG" 2>&1
[ -z "$created_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
rm -f "$STEP_LOG"
STEP_LOG=""
