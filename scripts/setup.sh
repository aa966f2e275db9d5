#!/usr/bin/env bash
# Sets up everything PoT needs on a fresh machine, from the project's own files only:
#   - node_modules/: Anvil, forge, cast (native binaries) and solc-js, OpenZeppelin (package.json)
#   - .venv/: the Python package `pot` and its dependencies (pyproject.toml)
# Idempotent: a second run only checks. Pass --test to also install the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ ! -x node_modules/.bin/anvil ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci (Anvil, solc-js, OpenZeppelin)"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> python venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
stamp=".venv/.pot-installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> pip install -e .${extras}"
  .venv/bin/pip install --quiet -e ".${extras}"
  touch "$stamp"
fi
echo "==> compile contracts"
.venv/bin/pot contracts compile --quiet
echo "==> ready: .venv/bin/pot --help"
