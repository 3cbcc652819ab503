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
dockroll=${DOCKROLL:-$(command -v dockroll || echo ../../.venv/bin/dockroll)}
exec "$dockroll" promote "$1" --to "$2"
