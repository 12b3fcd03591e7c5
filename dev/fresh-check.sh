#!/usr/bin/env bash
# fresh-check.sh: run the README's two commands as a newcomer would, from a fresh clone
# in a fresh Debian 12 root, and print how long each took.
#
#   sudo dev/fresh-check.sh            # the committed HEAD of this repository
#   KAAS_FRESH_DIR=/var/tmp/x dev/fresh-check.sh
#
# The root is made with debootstrap (Debian's package; the minimal variant plus what
# the README assumes a machine has: a C compiler, git and CA certificates) and copied
# anew for every run, so nothing installed by an earlier run or by hand on this machine
# is there. The Rust toolchain (rustup's toolchains, cargo-nextest) is bind-mounted
# read-only at the paths it has here. Inside, as root:
#
#   1. ./dev/demo.sh --exit   (the README's first command, which stops once the demo
#      cluster is Available instead of serving until Ctrl-C)
#   2. ./dev/test.sh                         (the README's second command; CI's)
#
# The root runs in mount and PID namespaces of its own (unshare): when the check ends,
# every process started inside (the OpenStack test cloud's daemons too) is killed and
# every mount is gone. It shares this machine's network, so the test cloud's ports
# must be free: stop a cloud running here with dev/openstack/down.sh first. While it
# runs, dev/test.sh on this machine (CI's command) waits for it to end.
#
# Takes about half an hour on 2 cores. Logs: $KAAS_FRESH_DIR/{debootstrap,demo,test}.log.
# Not part of .ci/run, which has no time for it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=errtrap.sh
. "$HERE/errtrap.sh"

DIR=${KAAS_FRESH_DIR:-/var/tmp/kaas-fresh-check}
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
INCLUDE=ca-certificates,gcc,libc6-dev,git
# The test cloud's ports (dev/openstack/up.sh) and the demo's.
PORTS=(3306 4369 5000 5672 8774 8778 9292 9696 9876 11211 25672 7443 5100 5101)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
die() {
  echo "ERROR: $*" >&2
  exit 1
}

# ------------------------------------------------------------------ outside

outside() {
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
  # Held while the check runs: dev/test.sh on this machine waits for it instead of
  # running its tests against the fresh root's test cloud.
  exec 8>/run/lock/kaas-fresh-check.lock
  flock -n 8 || die "another dev/fresh-check.sh is running"
  local port held=()
  for port in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      held+=("$port")
    fi
  done
  ((${#held[@]} == 0)) ||
    die "ports ${held[*]} are in use on 127.0.0.1; the fresh root's test cloud needs them (stop a test cloud here with dev/openstack/down.sh)"
  local rustup=${RUSTUP_HOME:-$HOME/.rustup} cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
  local nextest
  nextest=$(command -v cargo-nextest) || die "cargo-nextest is not installed here"
  [ -d "$rustup/toolchains" ] || die "no rustup toolchains in $rustup"

  mkdir -p "$DIR"
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap (Debian)"
    STEP_LOG=$DIR/debootstrap.log
    apt-get update -q >"$STEP_LOG" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap \
      >>"$STEP_LOG" 2>&1
  fi
  local t0=$SECONDS base=$DIR/base root=$DIR/root
  # The pristine root is made once and kept; each run works on a copy of it.
  if [ ! -e "$base/.kaas-complete" ]; then
    log "debootstrap $SUITE into $base (log: $DIR/debootstrap.log)"
    rm -rf "$base"
    STEP_LOG=$DIR/debootstrap.log
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$base" "$MIRROR" \
      >>"$STEP_LOG" 2>&1
    # As on a Debian 12 machine: the updates and security suites too.
    cat >"$base/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
    touch "$base/.kaas-complete"
  fi
  STEP_LOG=""
  log "a fresh root: copying $base"
  rm -rf "$root"
  cp -a "$base" "$root"
  rm -f "$root/.kaas-complete"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/hosts "$root/etc/hosts"
  # This machine's own certificate authorities (say, of a TLS-inspecting egress proxy)
  # belong to the machine, not to the project: the fresh root trusts them too.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1
  fi
  log "a fresh clone of $(git -C "$REPO" rev-parse --short HEAD) ($(git -C "$REPO" log -1 --format=%s | cut -c1-60))"
  git clone -q --no-local "$REPO" "$root/root/kaas"
  local t_root=$((SECONDS - t0))

  local status=0
  RUSTUP_DIR=$rustup CARGO_BIN=$cargo_bin NEXTEST=$nextest ROOT=$root \
    unshare --mount --pid --fork --propagation private "$0" --inside || status=$?
  echo
  echo "fresh-check: root ${t_root}s; $(cat "$DIR/summary" 2>/dev/null || echo 'no summary: the check stopped early')"
  if [ "$status" = 0 ]; then
    echo "fresh-check: PASSED"
  else
    echo "fresh-check: FAILED (exit $status; logs in $DIR)"
  fi
  exit "$status"
}

# ------------------------------------------------------------------- inside
# Runs as PID 1 of its own PID namespace, in a private mount namespace.

# in_root STEP NAME COMMAND: runs COMMAND in the fresh clone inside the root, its output
# to $DIR/NAME.log; sets SECONDS_<NAME> to how long it took; returns its exit status.
in_root() {
  local step=$1 name=$2 command=$3 t0=$SECONDS rc=0
  log "$step $command (log: $DIR/$name.log)"
  chroot "$ROOT" "${env[@]}" bash -c "cd /root/kaas && $command" \
    >"$DIR/$name.log" 2>&1 </dev/null || rc=$?
  printf -v "SECONDS_$name" '%s' "$((SECONDS - t0))"
  local took_var="SECONDS_$name"
  log "$name: exit $rc after ${!took_var}s"
  [ "$rc" = 0 ] || tail -n 60 "$DIR/$name.log"
  return "$rc"
}

inside() {
  local root=$ROOT
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/dev/shm"
  mount -t tmpfs tmpfs "$root/run"
  mount -t tmpfs tmpfs "$root/tmp"
  # The toolchain, read-only, where it is on this machine.
  local path
  for path in "$RUSTUP_DIR" "$CARGO_BIN"; do
    mkdir -p "$root$path"
    mount --bind "$path" "$root$path"
    mount -o remount,bind,ro "$root$path"
  done
  touch "$root/usr/local/bin/cargo-nextest"
  mount --bind "$NEXTEST" "$root/usr/local/bin/cargo-nextest"
  mount -o remount,bind,ro "$root/usr/local/bin/cargo-nextest"

  local env=(env -i HOME=/root TERM=dumb LANG=C.UTF-8 USER=root
    RUSTUP_HOME="$RUSTUP_DIR" CARGO_HOME=/root/.cargo
    PATH="$CARGO_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  # Of this machine's environment only how it reaches the network: proxies and the
  # certificate bundle its clients are told to trust.
  local name
  for name in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE \
    GIT_SSL_CAINFO http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -z "${!name:-}" ] || env+=("$name=${!name}")
  done
  local demo_rc=0 test_rc=0
  in_root 1/2 demo "./dev/demo.sh --exit" || demo_rc=$?
  in_root 2/2 test "./dev/test.sh" || test_rc=$?

  local summary
  summary=$(grep -E '^ +Summary ' "$DIR/test.log" | tail -n 1 | sed 's/^ *//' || true)
  echo "demo ${SECONDS_demo}s (exit $demo_rc), test ${SECONDS_test}s (exit $test_rc) ${summary:+[$summary]}" \
    >"$DIR/summary"
  # Leaving PID 1 kills every process of the namespace: the test cloud's daemons too.
  if [ "$demo_rc" != 0 ] || [ "$test_rc" != 0 ]; then
    exit 1
  fi
}

if [ "${1:-}" = --inside ]; then
  inside
else
  outside
fi
