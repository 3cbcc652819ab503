#!/usr/bin/env bash
# Deploy a pushed VERSION of the sample service to ENV: the seed's interface, on dockroll.
#   scripts/deploy.sh v1.0.0 dev
# `dockroll promote` checks the environment's gates (order, approvals, soak,
# deployment window), points the environment's tags at the same digest and
# deploys it with the environment's strategy. Nothing is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
  echo "usage: $0 VERSION ENV   (e.g. $0 v1.0.0 dev)" >&2
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
exec "$dockroll" promote "$1" --to "$2"
