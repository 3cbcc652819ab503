#!/usr/bin/env bash
# The demo behind `make demo`: the sample service from commit to production and back.
#
#   v1.0.0: `dockroll pipeline` (build → test → scan → tag → push → dev, rolling)
#           → staging (blue-green) → approval → prod (canary)
#   v1.1.0: the same way, then prod rolls back to v1.0.0
#
# It works on a scratch copy of examples/flask-app with its own git history (two
# release tags), so the tags show what a real release build gets.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dockroll="$root/.venv/bin/dockroll"
work="${DOCKROLL_DEMO_DIR:-$root/.dockroll/demo/flask-app}"

# Demo pacing: prod normally wants 10 minutes of soak in staging and 30 s canary steps.
export PROD_MIN_SOAK=0s PROD_CANARY_PAUSE=3s
export DOCKROLL_ACTOR="${DOCKROLL_ACTOR:-demo-deployer}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
git_demo() { git -c user.name="dockroll demo" -c user.email=demo@localhost "$@"; }

release() {  # the checked-out commit: tags, then the local pipeline up to dev
  "$dockroll" tags
  "$dockroll" pipeline
}

promote_onwards() {  # VERSION: staging → approval → prod, the digest dev runs
  "$dockroll" promote "$1" --to staging
  "$dockroll" approve "$1" --env prod --by release-manager --note "checked in staging"
  "$dockroll" promote "$1" --to prod
}

step "0 a scratch copy of the sample service with its own git history"
rm -rf "$work"
mkdir -p "$work"
cp -R "$root/examples/flask-app/." "$work/"
rm -rf "$work/tests" "$work/.pytest_cache"
cd "$work"
git init -q -b main
git_demo add -A
git_demo commit -q -m "flask-app: first release"
git_demo tag v1.0.0
echo "in $work at v1.0.0 ($(git rev-parse --short HEAD))"

step "1 release v1.0.0: tags, then build once, smoke test, scan, push and deploy to dev"
release

step "2 promote the same digest: staging (blue-green) → approval → prod (canary)"
promote_onwards v1.0.0

step "3 release v1.1.0 and take it through the same gates"
sed -i "s/Hello from the dockroll sample service/Hello again from the dockroll sample service/" app.py
git_demo commit -q -am "flask-app: friendlier greeting"
git_demo tag v1.1.0
release
promote_onwards v1.1.0

step "4 roll prod back to v1.0.0"
"$dockroll" rollback --env prod --to v1.0.0

step "5 where everything stands"
"$dockroll" status
"$dockroll" history --env prod --limit 6

cat <<NEXT

Try next (from $work):
  curl -s http://127.0.0.1:8081/version      # dev;  8082 staging, 8083 prod
  $dockroll status --json
  $dockroll rollback --env staging            # blue-green: back to the standby slot at once
  $dockroll promote v1.1.0 --to prod --dry-run
  $dockroll audit
  $dockroll tags --tags 'type=semver,pattern={{major}}.{{minor}}'
NEXT
