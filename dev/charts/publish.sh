#!/usr/bin/env bash
# publish.sh: put kaas' own stand-in charts (dev/charts) where the local stacks
# (dev/stacks) say they are: each chart pushed to the local registry as
# charts/NAME:VERSION (with `kaas chart push`, laid out as `helm push` does), and the
# Gateway API manifest as a blob of kaas/manifests/gateway-api. Starts the local
# registry first (dev/registry/up.sh, port 5100, which the local stacks name).
#
#   dev/charts/publish.sh target/debug/kaas
#
# Checks that every digest it pushes is the one the local stacks pin, and fails
# naming the chart otherwise. Idempotent: pushing the same chart again changes
# nothing. The demo (dev/demo.sh) and the tests (dev/test.sh) run it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../errtrap.sh
. "$ROOT/dev/errtrap.sh"

KAAS=${1:?usage: dev/charts/publish.sh PATH/TO/kaas}
[ -x "$KAAS" ] || { echo "ERROR: $KAAS is not an executable kaas" >&2; exit 1; }

if [ "${KAAS_REGISTRY_PORT:-5100}" != 5100 ]; then
  echo "ERROR: the local stacks name the registry at 127.0.0.1:5100; KAAS_REGISTRY_PORT is ${KAAS_REGISTRY_PORT}" >&2
  exit 1
fi
registry=$("$ROOT/dev/registry/up.sh")
host=${registry#oci://}

pinned() { grep -h "digest: $1\$" "$ROOT"/dev/stacks/*/stack.yaml >/dev/null; }

for chart in "$HERE"/*/Chart.yaml; do
  dir=$(dirname "$chart")
  out=$("$KAAS" chart push "$dir" --to "$registry/charts")
  reference=${out% *}
  digest=${out##* }
  if ! pinned "$digest"; then
    echo "ERROR: $reference is $digest, which dev/stacks does not pin: update the local stacks" >&2
    exit 1
  fi
  echo "pushed $reference $digest"
done

# The manifest: one blob, uploaded monolithically, served at /v2/NAME/blobs/DIGEST.
manifest=$HERE/gateway-api/standard-install.yaml
digest=sha256:$(sha256sum "$manifest" | cut -d' ' -f1)
if ! pinned "$digest"; then
  echo "ERROR: $manifest is $digest, which dev/stacks does not pin: update the local stacks" >&2
  exit 1
fi
python3 - "$host" "$digest" "$manifest" <<'PY'
import sys, urllib.parse, urllib.request
host, digest, path = sys.argv[1:]
repo = "kaas/manifests/gateway-api"
blob = f"http://{host}/v2/{repo}/blobs/{digest}"
try:
    urllib.request.urlopen(urllib.request.Request(blob, method="HEAD"), timeout=10)
    sys.exit(0)
except urllib.error.HTTPError as e:
    if e.code != 404:
        raise
# An upload session, then the whole blob in one PUT to the session's location.
start = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/uploads/", method="POST")
with urllib.request.urlopen(start, timeout=10) as r:
    location = urllib.parse.urljoin(f"http://{host}/", r.headers["Location"])
separator = "&" if "?" in location else "?"
put = urllib.request.Request(
    f"{location}{separator}digest={digest}",
    data=open(path, "rb").read(),
    method="PUT",
    headers={"Content-Type": "application/octet-stream"},
)
with urllib.request.urlopen(put, timeout=30) as r:
    if r.status != 201:
        sys.exit(f"uploading {path}: HTTP {r.status}")
PY
echo "pushed http://$host/v2/kaas/manifests/gateway-api/blobs/$digest"
