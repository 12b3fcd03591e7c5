#!/usr/bin/env bash
# demo.sh: the README's first command. Builds kaas, publishes its own stand-in charts
# to a local OCI registry (offline: nothing is fetched from the internet), starts the
# integrated container registry with kaas as its token service, and runs `kaas demo`
# on the simulated cloud with the local stacks (dev/stacks), whose addons come from
# the chart registry: a server, a cluster created with live progress (with its own
# registry pull Secret), served until Ctrl-C. Arguments go to `kaas demo` (e.g.
# --exit, --sim-speed 100); the data folder and address are KAAS_DEMO_DATA_DIR
# (./kaas-data) and KAAS_DEMO_LISTEN (127.0.0.1:7443), since the registry is told
# where its token service is.
#
# Installs Debian's docker-registry package when it is missing (as root or through
# sudo). Both registries keep running afterwards: dev/registry/down.sh stops the chart
# registry, KAAS_REGISTRY_STATE=$XDG_STATE_HOME/kaas/tenant-registry
# dev/registry/down.sh the other.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=errtrap.sh
. dev/errtrap.sh

missing=()
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
dev/apt-install.sh "${missing[@]}"

echo "==> building kaas (release)"
cargo build --release --locked --bin kaas
kaas=${CARGO_TARGET_DIR:-target}/release/kaas
echo "==> publishing the local stacks' charts to the local registry"
dev/charts/publish.sh "$kaas" >/dev/null

data_dir=${KAAS_DEMO_DATA_DIR:-./kaas-data}
listen=${KAAS_DEMO_LISTEN:-127.0.0.1:7443}
registry_port=${KAAS_DEMO_REGISTRY_PORT:-5101}
echo "==> starting the integrated registry on 127.0.0.1:$registry_port (kaas: its token service)"
export KAAS_REGISTRY_STATE=${XDG_STATE_HOME:-$HOME/.local/state}/kaas/tenant-registry
export KAAS_REGISTRY_PORT=$registry_port
mkdir -p "$KAAS_REGISTRY_STATE"
config=$KAAS_REGISTRY_STATE/kaas-config.yml
# The token CA is the data folder's: a registry still running may trust another one.
"$kaas" registry config --data-dir "$data_dir" --kaas-url "http://$listen" \
  --listen "127.0.0.1:$registry_port" --storage "$KAAS_REGISTRY_STATE/data" >"$config"
dev/registry/down.sh >/dev/null
KAAS_REGISTRY_CONFIG=$config dev/registry/up.sh >/dev/null
exec "$kaas" demo --data-dir "$data_dir" --listen "$listen" \
  --registry-url "http://127.0.0.1:$registry_port" \
  --stacks-dir dev/stacks --default-stack local-1.36 "$@"
