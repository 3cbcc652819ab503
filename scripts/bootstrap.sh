#!/usr/bin/env bash
# Create .venv/ and install dockroll into it (editable, with the test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found; install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)" >&2
  exit 7
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: dockroll needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 7
fi
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-venv (needed to create .venv)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "error: $PYTHON cannot create virtual environments; install python3-venv (Debian/Ubuntu)" >&2
    exit 7
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check -e '.[dev]'
echo "dockroll installed: .venv/bin/dockroll ($(.venv/bin/dockroll --version))"
