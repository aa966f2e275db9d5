#!/usr/bin/env bash
# Installs js-ipfs (the offline IPFS test node for pot.storage's KuboStore tests) into
# tools/ipfs/node_modules from the committed lockfile (about 3 minutes from the npm registry, under 1 with a warm cache).
# Idempotent: does nothing when node_modules is current.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x node_modules/.bin/jsipfs ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "js-ipfs already installed in $(pwd)/node_modules"
  exit 0
fi
# `npm install`, not `npm ci`: npm's lock-sync check misreads the file: overrides that stub out
# js-ipfs's optional WebRTC transports (see package.json). The lockfile still pins every version.
npm install --no-audit --no-fund --loglevel=error
echo "js-ipfs installed: $(pwd)/node_modules/.bin/jsipfs"
