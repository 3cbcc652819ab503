#!/usr/bin/env bash
# Roll ENV of the sample service back to VERSION: the seed's interface, on dockroll.
#   scripts/rollback.sh v0.9.0 prod
# Within a blue-green environment's standby window the switch back is instant;
# otherwise the old digest is deployed with the environment's strategy.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
  echo "usage: $0 VERSION ENV   (e.g. $0 v0.9.0 prod)" >&2
  exit 2
fi
dockroll=${DOCKROLL:-$(command -v dockroll || true)}
if [ -z "$dockroll" ] && [ -x ../../.venv/bin/dockroll ]; then
  dockroll=../../.venv/bin/dockroll  # run from a checkout of the dockroll repository
fi
if [ -z "$dockroll" ]; then
  echo "error: dockroll not found: put it on PATH (e.g. the repository's .venv/bin) or set DOCKROLL" >&2
  exit 2
fi
exec "$dockroll" rollback --env "$2" --to "$1"
