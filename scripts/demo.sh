#!/usr/bin/env bash
# The demo behind `make demo`: tags → build → smoke test → push of the sample service.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dockroll="$root/.venv/bin/dockroll"
cd "$root/examples/flask-app"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/4 tags for this commit (docker/metadata-action rules)"
"$dockroll" tags

step "2/4 build once, with every tag, build arg and OCI label"
"$dockroll" build

step "3/4 smoke-test the image: health, then /version must report what was built"
"$dockroll" test

step "4/4 push every tag to the local registry"
"$dockroll" push

cat <<'NEXT'

Try next (from examples/flask-app/):
  ../../.venv/bin/dockroll tags --json                      # the same tags, for scripts
  ../../.venv/bin/dockroll tags --tags 'type=semver,pattern={{major}}.{{minor}},value=v2.3.4'
  curl -s http://127.0.0.1:5000/v2/dockroll/flask-app/tags/list   # what the registry holds
  ../../.venv/bin/dockroll dev status                       # the local infrastructure
NEXT
