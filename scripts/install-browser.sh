#!/usr/bin/env bash
# Installs the browser the explorer's tests drive (tests marked `browser`): Debian's chromium,
# from the distribution's own packages. The Python side (Playwright) comes with the test extras
# and is pointed at this binary; it never downloads a browser of its own (no `playwright install`).
# Idempotent. Without root it cannot install: CI fails, a developer's run skips those tests.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "==> browser: $(chromium --version 2>/dev/null | head -n 1)"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "chromium is missing and CI does not run as root: cannot run the browser tests" >&2
    exit 1
  fi
  echo "==> chromium is not installed and installing it needs root: the browser tests will be skipped" >&2
  echo "    (as root: bash scripts/install-browser.sh; or sudo apt-get install -y chromium)" >&2
  exit 0
fi
echo "==> apt-get install chromium"
export DEBIAN_FRONTEND=noninteractive
# stale package lists on a fresh machine: refresh them once and try again
apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
echo "==> browser: $(chromium --version 2>/dev/null | head -n 1)"
