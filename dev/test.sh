#!/usr/bin/env bash
# Installs what the tests need and runs all of them: formatting, lints, unit tests,
# the tests that check rendered artifacts with real tools (cloud-init's schema
# validator, openssl, kubectl), the end-to-end tests that drive the real binary
# against the simulated cloud, and the OpenStack provider's tests against real
# OpenStack services that dev/openstack/up.sh installs and starts on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

# A one-off build gains nothing from incremental caches, which would double the size of
# target/ (see [profile.dev] in Cargo.toml for the rest of the disk budget).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "==> disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free"

# Debian packages for the tools the tests check artifacts with.
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v cloud-init >/dev/null 2>&1 || missing+=(cloud-init)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]}"
  # There is no init system here: keep the packages' scripts from starting services.
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$created_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# The Kubernetes JSON schemas of each release (from their OpenAPI documents), which the
# rendered addon manifests are validated against.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "==> installing kubernetes-validate (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
fi

# Schemathesis fuzzes the REST API from its OpenAPI document (crates/kaas/tests/fuzz.rs).
# Pinned: its checks and options change between releases (4.x differs from 3.x).
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "==> installing schemathesis (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
fi

# The OpenStack test cloud (Keystone, Nova, Neutron, Octavia, ... from Debian's
# packages) for the OpenStack provider's tests. It installs and configures itself in
# the background while the code is checked and built; `up.sh` is idempotent, so a
# cloud that is already up costs a few seconds.
mkdir -p target
up_log=target/openstack-up.log
echo "==> bringing up the OpenStack test cloud in the background (log: $up_log)"
$sudo dev/openstack/up.sh >"$up_log" 2>&1 &
up_pid=$!

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> building the tests"
cargo nextest run --workspace --locked --no-run
echo "==> waiting for the OpenStack test cloud"
if ! wait "$up_pid"; then
  tail -n 60 "$up_log"
  echo "dev/openstack/up.sh failed; its whole log is $up_log" >&2
  exit 1
fi
tail -n 3 "$up_log"
echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast
